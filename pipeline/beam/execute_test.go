package beam_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// TestExecuteUnreachableEndpoint: interrupted while Beam still dials a
// portable job endpoint nobody listens on, Execute returns within seconds,
// saying the service could not be reached (nothing was submitted), instead
// of waiting for a cancellation nobody can confirm.
func TestExecuteUnreachableEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := l.Addr().String()
	l.Close() // nobody listens there now
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
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = eddybeam.Execute(ctx, endpoint, bp)
	if err == nil || !strings.Contains(err.Error(), "could not be reached") {
		t.Fatalf("Execute on %s: %v", endpoint, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Execute took %v to give up on an unreachable endpoint", d)
	}
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
}
