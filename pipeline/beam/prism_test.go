package beam_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// TestPrismJobServerExposure is the reproduction behind the warning in
// docs/beam.md and eddy-beam's usage: Beam v2.77.0 starts prism's job
// server (and the FnAPI endpoints multiplexed on it) with
// jobservices.NewServer, which listens on ":port", i.e. every interface,
// without authentication; the package is internal to prism and
// prism.Options has a port but no address, so no caller can choose
// loopback. The test fails when a Beam upgrade binds it to loopback: then
// drop the warning.
func TestPrismJobServerExposure(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/net/tcp*")
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
	if _, err := prism.Execute(context.Background(), bp); err != nil {
		t.Fatal(err)
	}
	endpoint := *jobopts.Endpoint // set by prism.Execute: localhost:PORT
	_, port, ok := strings.Cut(endpoint, ":")
	if !ok {
		t.Fatalf("prism endpoint %q", endpoint)
	}
	addrs := listeners(t, port)
	t.Logf("prism job server %s listens on %v", endpoint, addrs)
	if len(addrs) == 0 {
		t.Fatalf("no listener on port %s", port)
	}
	for _, a := range addrs {
		if a != "0.0.0.0" && a != "::" {
			t.Fatalf("prism's job server now listens on %s: Beam binds it to loopback; drop the all-interfaces warning from docs/beam.md and eddy-beam", a)
		}
	}
}

// listeners returns the local addresses of TCP sockets listening on port,
// from /proc/net/tcp and tcp6.
func listeners(t *testing.T, port string) []string {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", p)
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 4 || fs[3] != "0A" || !strings.HasSuffix(fs[1], want) { // 0A: LISTEN
				continue
			}
			switch hex := strings.TrimSuffix(fs[1], want); hex {
			case "00000000":
				out = append(out, "0.0.0.0")
			case "00000000000000000000000000000000":
				out = append(out, "::")
			default:
				out = append(out, hex)
			}
		}
		fh.Close()
	}
	return out
}
