package beam_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/proclisten"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// overlayHint says how to build with third_party/beam-prism's patch.
const overlayHint = "build and test Beam code through make (make test, make build-beam), or by hand with " +
	"dir=$(scripts/beam-prism.sh); GOWORK=$dir/go.work GOFLAGS=-overlay=$dir/overlay.json go test ./pipeline/beam/ " +
	"(third_party/beam-prism/README.md)"

// TestPrismJobServerLoopback: prism's job server, and the FnAPI endpoints
// multiplexed on its listener, listen on 127.0.0.1 only. Beam v2.77.0
// listens on every interface without authentication; the build patches
// that one line (third_party/beam-prism). Built without the patch, this
// test fails and says how to build with it.
func TestPrismJobServerLoopback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/net/tcp*")
	}
	if !eddybeam.PrismLoopback() {
		t.Fatalf("this test binary was built without third_party/beam-prism's patch, so prism's job server listens on every interface: %s", overlayHint)
	}
	plans, err := pipeline.Load("p.yaml", []byte(cases[0].yaml))
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "export.jsonl")
	writeExport(t, input, recorded(3, time.Second, time.Minute)[:20])
	bp, err := eddybeam.Translate(plans[0], eddybeam.Options{Input: input, OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eddybeam.Execute(context.Background(), eddybeam.RunnerPrism, bp); err != nil {
		t.Fatal(err)
	}
	endpoint, err := eddybeam.PrismEndpoint() // the server the job ran on
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatalf("prism endpoint %q: %v", endpoint, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	all, err := proclisten.Listeners(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.AddrPort
	for _, a := range all {
		if int(a.Port()) == p {
			addrs = append(addrs, a)
		}
	}
	t.Logf("prism job server %s listens on %v", endpoint, addrs)
	if len(addrs) == 0 {
		t.Fatalf("no listener on port %d", p)
	}
	for _, a := range addrs {
		if !a.Addr().IsLoopback() {
			t.Fatalf("prism's job server listens on %v although the build says it is patched: the overlay no longer takes effect (%s)", a, overlayHint)
		}
	}
}
