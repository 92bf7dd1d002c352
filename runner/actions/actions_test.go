package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

func TestPolicy(t *testing.T) {
	c := Config{AllowedImages: []string{"localhost/eddy/*", "registry.local/diag:1.2"}, ForeignTargets: []string{"factory/motor-*/controller"}}
	for image, want := range map[string]bool{
		"localhost/eddy/busybox:1.35":    true,
		"localhost/eddy/busybox":         true,
		"localhost/eddy/sub/busybox:1":   false, // * does not cross /
		"registry.local/diag:1.2":        true,
		"registry.local/diag:1.3":        false,
		"docker.io/library/busybox:1.35": false,
		"":                               false,
	} {
		if got := c.ImageAllowed(image); got != want {
			t.Errorf("ImageAllowed(%q) = %v", image, got)
		}
	}
	if (Config{}).ImageAllowed("localhost/eddy/busybox:1.35") {
		t.Error("the zero policy must refuse every image")
	}
	if !(Config{AllowedImages: []string{"*"}}).ImageAllowed("a/b/c:d") {
		t.Error(`"*" allows every image`)
	}
	if !c.ForeignAllowed("factory", "motor-3", "controller") || c.ForeignAllowed("factory", "motor-3", "sidecar") || c.ForeignAllowed("other", "motor-3", "controller") {
		t.Error("ForeignAllowed")
	}
}

func TestPodName(t *testing.T) {
	uid := episodeUID("default/p/Cool_Down", "abc/firing")
	if uid != episodeUID("default/p/Cool_Down", "abc/firing") || uid == episodeUID("default/p/Cool_Down", "abc/resolved") {
		t.Fatal("episode uids must be stable and distinct")
	}
	n := podName("Cool_Down."+strings.Repeat("x", 80), uid)
	if len(n) > 63 || !strings.HasPrefix(n, "eddy-cool-down-") || strings.ContainsAny(n, "_.") {
		t.Fatalf("pod name %q", n)
	}
}

func TestOutputTail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.log")
	log := "2026-11-30T19:20:51.977792843Z stdout F hello world\n" +
		"2026-11-30T19:20:51.977792843Z stderr P partial \n" +
		"2026-11-30T19:20:51.977792843Z stderr F line\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{OutputBytes: 4096}}
	if got := m.output(p, ""); got != "hello world\npartial line\n" {
		t.Fatalf("output %q", got)
	}
	m.cfg.OutputBytes = 5
	if got := m.output(p, ""); got != "line\n" {
		t.Fatalf("tail %q", got)
	}
	m.cfg.OutputBytes = -1
	if got := m.output(p, ""); got != "" {
		t.Fatalf("no output wanted, got %q", got)
	}
}

// TestReplayIndex: the episode index and the unfinished intents come back
// from the log.
func TestReplayIndex(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	defer log.Close()
	ctx := context.Background()
	put := func(rec Record) {
		b, _ := json.Marshal(rec)
		if err := log.Append(ctx, &wal.Record{Topic: Topic, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Append(ctx, &wal.Record{Topic: "sensors/a", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	put(Record{State: Intent, Action: "a", Episode: "1"})
	put(Record{State: Started, Action: "a", Episode: "1", ContainerID: "c1"})
	put(Record{State: Exited, Action: "a", Episode: "1"})
	put(Record{State: Intent, Action: "a", Episode: "2"})
	put(Record{State: Started, Action: "a", Episode: "2", ContainerID: "c2", SandboxID: "s2"})
	put(Record{State: Refused, Action: "b", Episode: "3"})
	m, err := New(Options{Log: log, Config: Config{Runtime: "/nonexistent.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	defer m.Close()
	pending, err := m.replay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Episode != "2" || pending[0].ContainerID != "c2" || pending[0].SandboxID != "s2" {
		t.Fatalf("pending %+v", pending)
	}
	for _, k := range []string{"a\x001", "a\x002", "b\x003"} {
		if !m.seen(k) {
			t.Errorf("episode %q not remembered", k)
		}
	}
	if len(m.Recent()) != 6 {
		t.Errorf("recent %d", len(m.Recent()))
	}
}

func FuzzParseQuantities(f *testing.F) {
	for _, s := range []string{"0.5", "500m", "2", "64Mi", "1G", "4194304", "", "-1", "1e400", "9223372036854775807Ti", "m", "Mi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := pipeline.ParseCPU(s); err == nil && s != "" && n <= 0 {
			t.Fatalf("ParseCPU(%q) = %d without error", s, n)
		}
		if n, err := pipeline.ParseMemory(s); err == nil && s != "" && n < 4<<20 {
			t.Fatalf("ParseMemory(%q) = %d without error", s, n)
		}
	})
}

// BenchmarkReplay is the start-up cost of rebuilding the episode index
// from a log of 200 000 records, one in 1000 on the actions stream (one
// op = one whole replay).
func BenchmarkReplay(b *testing.B) {
	const n = 200_000
	log := wal.NewMemory(wal.MemoryOptions{})
	defer log.Close()
	ctx := context.Background()
	payload := []byte(`{"device":"thermo-1","temperature":21.5,"ts":1700000000000}`)
	batch := make([]*wal.Record, 0, 1000)
	for i := 0; i < n; i++ {
		rec := &wal.Record{Topic: "factory/line-1/data", Payload: payload}
		if i%1000 == 0 {
			p, _ := json.Marshal(Record{State: Exited, Action: "default/p/a", Episode: fmt.Sprint(i), Time: time.Now().UnixMilli()})
			rec = &wal.Record{Topic: Topic, Payload: p}
		}
		batch = append(batch, rec)
		if len(batch) == cap(batch) || i == n-1 {
			if err := log.AppendWith(ctx, wal.Buffered, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := New(Options{Log: log, Config: Config{Runtime: "/nonexistent.sock"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.replay(ctx); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrecords/s")
}
