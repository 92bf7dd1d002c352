package exemem

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// rssFile is this process's file-backed RSS in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RssFile:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no RssFile in /proc/self/status:\n%s", b)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n << 10
}

func TestReleaseDropsExecutablePages(t *testing.T) {
	before := rssFile(t)
	st, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("released %d mappings, %d bytes mapped, %d resident; RssFile %d -> %d KiB", st.Mappings, st.Bytes, st.Resident, before>>10, after>>10)
	if st.Mappings == 0 || st.Resident == 0 {
		t.Fatalf("Release found nothing to release: %+v", st)
	}
	// The test binary's code was resident (it is running); releasing it
	// must lower the file-backed RSS by a good part of what was resident,
	// though the code running between the two reads (opening and reading
	// /proc) faults some back, 64 KiB around each fault.
	if after >= before || before-after < st.Resident/4 {
		t.Errorf("RssFile %d -> %d KiB after releasing %d KiB", before>>10, after>>10, st.Resident>>10)
	}
	// The process keeps working: code and read-only data come back.
	if got := strings.Repeat("ab", 3); got != "ababab" {
		t.Errorf("after Release: %q", got)
	}
	if _, err := Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

func TestParseSmaps(t *testing.T) {
	in := `00400000-012cc000 r-xp 00000000 fe:00 9986683                            /work/bin/eddy
Size:              15152 kB
Rss:               10352 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
022a5000-02331000 rw-p 01ea5000 fe:00 9986683                            /work/bin/eddy
Rss:                 496 kB
Anonymous:           148 kB
ad53cc00000-ad53d400000 rw-p 00000000 00:00 0 
Rss:                2824 kB
Anonymous:          2824 kB
`
	got, err := parseSmaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{start: 0x400000, end: 0x12cc000, perms: "r-xp", dev: "fe:00", inode: 9986683, rss: 10352 << 10},
		{start: 0x22a5000, end: 0x2331000, perms: "rw-p", dev: "fe:00", inode: 9986683, rss: 496 << 10, anon: 148 << 10},
		{start: 0xad53cc00000, end: 0xad53d400000, perms: "rw-p", dev: "00:00", rss: 2824 << 10, anon: 2824 << 10},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parseSmaps(strings.NewReader("garbage\n")); err == nil {
		t.Error("parseSmaps accepted a line that is no mapping")
	}
}

func TestReleasableOnlyCleanReadOnlyExecutableMappings(t *testing.T) {
	exe := mapping{perms: "r-xp", dev: "fe:00", inode: 42}
	var st = statFor(0xfe, 0x00, 42)
	for _, c := range []struct {
		name string
		m    mapping
		want bool
	}{
		{"code", exe, true},
		{"read-only data", mapping{perms: "r--p", dev: "fe:00", inode: 42}, true},
		{"writable data", mapping{perms: "rw-p", dev: "fe:00", inode: 42}, false},
		{"relocated read-only data (copied on write)", mapping{perms: "r--p", dev: "fe:00", inode: 42, anon: 4096}, false},
		{"shared mapping", mapping{perms: "r--s", dev: "fe:00", inode: 42}, false},
		{"another file", mapping{perms: "r-xp", dev: "fe:00", inode: 43}, false},
		{"same inode on another device", mapping{perms: "r-xp", dev: "fe:01", inode: 42}, false},
	} {
		if got := releasable(c.m, st); got != c.want {
			t.Errorf("%s: releasable = %v, want %v", c.name, got, c.want)
		}
	}
}

func statFor(major, minor, ino uint64) (st syscall.Stat_t) {
	st.Dev = devNumber(major, minor)
	st.Ino = ino
	return st
}
