package beam_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/eddy-edge/eddy/internal/beamtest"
	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/proclisten"
	"github.com/eddy-edge/eddy/pipeline"
)

// eddyBeam is the eddy-beam binary the tests below run, built once per test
// binary with third_party/beam-prism's patch, as make build-beam builds it.
var eddyBeam struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// eddyBeamBinary builds cmd/eddy-beam (once) and returns its path.
func eddyBeamBinary(t *testing.T) string {
	t.Helper()
	eddyBeam.once.Do(func() {
		if eddyBeam.dir, eddyBeam.err = os.MkdirTemp("", "eddy-beam-test-"); eddyBeam.err != nil {
			return
		}
		eddyBeam.path = filepath.Join(eddyBeam.dir, "eddy-beam")
		eddyBeam.err = beamtest.Build(eddyBeam.path, "../../cmd/eddy-beam")
	})
	if eddyBeam.err != nil {
		t.Fatal(eddyBeam.err)
	}
	return eddyBeam.path
}

// TestEddyBeamPrismListeners runs the built eddy-beam binary with --runner
// prism on a live input (so that it keeps running) and requires every TCP
// listener of the process, prism's job server and the loopback worker pool
// among them, to be on loopback.
func TestEddyBeamPrismListeners(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := eddyBeamBinary(t)
	h, js := startHub(t)
	forward(t, js, "edge-1", recorded(5, time.Second, time.Minute)[:200])
	dir := t.TempDir()
	spec := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(spec, []byte(cases[0].yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bin, "run", spec, "--runner", "prism", "--output-dir", out,
		"--input", h.ClientURL()+"/eddy_up?subject=eddy.up.edge-1.>&domain=hub&live=true")
	proc := e2etest.Start(t, cmd)
	// The job runs once it has written window results (the first ones take
	// a while on a loaded machine: a long deadline, never reached when
	// the job works).
	for deadline := time.Now().Add(3 * time.Minute); len(readLines(t, filepath.Join(out, "out.jsonl"))) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("eddy-beam's live job wrote no window results in 3 minutes:\n%s", proc.Logs())
		}
	}
	addrs, err := proclisten.Listeners(proc.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eddy-beam (pid %d) listens on %v", proc.Pid(), addrs)
	if len(addrs) < 2 {
		t.Fatalf("eddy-beam listens on %v: want prism's job server and the loopback worker pool at least", addrs)
	}
	for _, a := range addrs {
		if !a.Addr().IsLoopback() {
			t.Fatalf("eddy-beam listens on %v, not loopback (all: %v)", a, addrs)
		}
	}
	// Interrupted, it cancels the job and exits.
	proc.Stop(syscall.SIGINT)
}

// TestEddyBeamPortableEndpoint runs the built eddy-beam binary against a
// portable job endpoint (--runner 127.0.0.1:PORT): prism's job service
// started on its own in this process, as a Flink or Spark job server would
// be, with eddy-beam's workers in eddy-beam (the LOOPBACK environment). The
// output must be the edge engine's. Flink, Spark and Dataflow themselves are
// not tested (no JVM stack or cloud here).
func TestEddyBeamPortableEndpoint(t *testing.T) {
	bin := eddyBeamBinary(t)
	c := cases[4] // window + alert: the combiner and the keyed steps
	if c.name != "alert" {
		t.Fatalf("cases[4] is %q, want the alert case", c.name)
	}
	recs := recorded(42, c.shuffle, 5*time.Minute)
	plans, err := pipeline.Load(c.name+".yaml", []byte(c.yaml))
	if err != nil {
		t.Fatal(err)
	}
	edgeDir := t.TempDir()
	runEdge(t, plans[0], recs, edgeDir)
	dir := t.TempDir()
	input := filepath.Join(dir, "export.jsonl")
	writeExport(t, input, recs)
	spec := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(spec, []byte(c.yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	// A job server of its own on a free loopback port. prism's public API
	// takes a port, not a listener: the port is picked, freed and taken.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
		t.Fatal(err)
	}
	endpoint := "127.0.0.1:" + strconv.Itoa(port)

	out := filepath.Join(dir, "out")
	run := exec.Command(bin, "run", spec, "--input", input, "--runner", endpoint, "--output-dir", out)
	b, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("eddy-beam run --runner %s: %v\n%s", endpoint, err, b)
	}
	if !strings.Contains(string(b), "pipeline default/alert: done on "+endpoint) {
		t.Fatalf("eddy-beam did not report the run on %s:\n%s", endpoint, b)
	}
	compare(t, "output", readLines(t, filepath.Join(out, "out.jsonl")), readLines(t, filepath.Join(edgeDir, "out.jsonl")))
	compare(t, "late", readLines(t, filepath.Join(out, "late.jsonl")), readLines(t, filepath.Join(edgeDir, "late.jsonl")))
}
