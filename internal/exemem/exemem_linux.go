package exemem

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// mapping is one line of /proc/self/smaps with the fields Release reads.
type mapping struct {
	start, end uint64
	perms      string
	dev        string
	inode      uint64
	rss, anon  int64 // bytes
}

// Release unmaps the executable's read-only file-backed pages from this
// process (see the package doc). It is safe to call at any time from any
// goroutine; the code that runs next faults its pages back in.
func Release() (Stats, error) {
	var st Stats
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return st, fmt.Errorf("exemem: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return st, fmt.Errorf("exemem: %w", err)
	}
	maps, err := parseSmaps(f)
	f.Close()
	if err != nil {
		return st, fmt.Errorf("exemem: reading /proc/self/smaps: %w", err)
	}
	for _, m := range maps {
		if !releasable(m, exe) {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), syscall.MADV_DONTNEED); e != 0 {
			return st, fmt.Errorf("exemem: madvise(%x-%x, MADV_DONTNEED): %w", m.start, m.end, e)
		}
		st.Mappings++
		st.Bytes += int64(m.end - m.start)
		st.Resident += m.rss
	}
	return st, nil
}

// releasable: a private read-only mapping of the executable's file with no
// anonymous pages.
func releasable(m mapping, exe syscall.Stat_t) bool {
	if m.perms != "r-xp" && m.perms != "r--p" {
		return false
	}
	if m.inode != exe.Ino || m.anon != 0 {
		return false
	}
	maj, min, ok := strings.Cut(m.dev, ":")
	if !ok {
		return false
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	return err1 == nil && err2 == nil && devNumber(ma, mi) == uint64(exe.Dev)
}

// devNumber is Linux's encoding of a device number (new_encode_dev), as
// stat reports it.
func devNumber(major, minor uint64) uint64 {
	return (minor & 0xff) | (major << 8) | ((minor &^ 0xff) << 12)
}

// parseSmaps reads the mappings of /proc/PID/smaps: a header line per
// mapping ("start-end perms offset dev inode [path]") followed by
// "Key: value kB" lines.
func parseSmaps(r io.Reader) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if k, ok := strings.CutSuffix(fields[0], ":"); ok {
			if len(out) == 0 || len(fields) < 2 {
				continue
			}
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				continue // e.g. VmFlags
			}
			switch k {
			case "Rss":
				out[len(out)-1].rss = n << 10
			case "Anonymous":
				out[len(out)-1].anon = n << 10
			}
			continue
		}
		if len(fields) < 5 {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			return nil, fmt.Errorf("unexpected address range in %q", line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		inode, err3 := strconv.ParseUint(fields[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || end < start {
			return nil, fmt.Errorf("unexpected mapping line %q", line)
		}
		out = append(out, mapping{start: start, end: end, perms: fields[1], dev: fields[3], inode: inode})
	}
	return out, sc.Err()
}
