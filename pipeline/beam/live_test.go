package beam_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// startHub starts a real embedded hub (eddy hub: JetStream domain hub, the
// eddy_up stream) and returns it with a JetStream client.
func startHub(t *testing.T) (*hub.Hub, jetstream.JetStream) {
	t.Helper()
	h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	return h, js
}

// forward publishes records as an edge's outbox forwards them.
func forward(t *testing.T, js jetstream.JetStream, node string, recs []walexport.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range recs {
		msg := nats.NewMsg("eddy.up." + node + ".readings")
		msg.Data = r.Payload
		msg.Header.Set("Eddy-Topic", r.Topic)
		msg.Header.Set("Eddy-Time", strconv.FormatInt(r.Time.UnixNano(), 10))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLiveParity follows the hub's up stream with a live (unbounded) job on
// prism and requires the edge engine's output for the same recording:
// window results and late events as the watermark passes, and alerts with
// the same ids. The job runs until the outputs are complete, then is
// cancelled.
func TestLiveParity(t *testing.T) {
	for _, c := range cases {
		if strings.HasPrefix(c.name, "session") {
			continue // refused on live inputs (TestLiveSupport)
		}
		t.Run(c.name, func(t *testing.T) {
			yaml := strings.Replace(c.yaml, "  key: device\n", "  key: device\n  idleTimeout: 2s\n", 1)
			lateAge := c.lateAge
			if lateAge == 0 {
				lateAge = 5 * time.Minute
			}
			recs := recorded(42, c.shuffle, lateAge)
			plans, err := pipeline.Load(c.name+".yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			plan := plans[0]
			edgeDir := t.TempDir()
			runEdge(t, plan, recs, edgeDir)
			want := readLines(t, filepath.Join(edgeDir, "out.jsonl"))
			wantLate := readLines(t, filepath.Join(edgeDir, "late.jsonl"))

			h, js := startHub(t)
			forward(t, js, "edge-1", recs)
			forward(t, js, "edge-2", recs[:20]) // another node: filtered out
			out := t.TempDir()
			bp, err := eddybeam.Translate(plan, eddybeam.Options{Input: h.ClientURL() + "/eddy_up?subject=eddy.up.edge-1.>&domain=hub&live=true", OutputDir: out})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := prism.Execute(ctx, bp)
				done <- err
			}()
			defer cancel()
			// Poll until the outputs are complete (or a deadline), then
			// compare: a difference is reported with the records.
			var got, gotLate []map[string]any
			for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				select {
				case err := <-done:
					t.Fatalf("the live job ended: %v", err)
				default:
				}
				got = readLines(t, filepath.Join(out, "out.jsonl"))
				gotLate = readLines(t, filepath.Join(out, "late.jsonl"))
				if len(got) >= len(want) && (len(plan.Spec.Late) == 0 || len(gotLate) >= len(wantLate)) {
					break
				}
			}
			// Complete: nothing more may come (a second second of idle
			// clock closes nothing new on the edge either).
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				got = readLines(t, filepath.Join(out, "out.jsonl"))
				gotLate = readLines(t, filepath.Join(out, "late.jsonl"))
			}
			cancel()
			<-done
			compare(t, "output", got, want)
			if len(plan.Spec.Late) > 0 {
				compare(t, "late", gotLate, wantLate)
			}
		})
	}
}
