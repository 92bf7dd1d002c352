package beam_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// TestHubInput replays the same records from a real embedded hub (eddy
// hub's JetStream up stream, with the headers the edge's outbox sets) and
// from an exported file, and requires the same results.
func TestHubInput(t *testing.T) {
	h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	recs := recorded(7, 3*time.Second, 5*time.Minute)
	for _, r := range recs {
		msg := nats.NewMsg("eddy.up.edge-1.readings")
		msg.Data = r.Payload
		msg.Header.Set("Eddy-Topic", r.Topic)
		msg.Header.Set("Eddy-Time", strconv.FormatInt(r.Time.UnixNano(), 10))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// Another node's data, filtered out by the subject.
	if _, err := js.Publish(ctx, "eddy.up.edge-2.readings", []byte(`{"device":"x","ts":1,"temperature":1}`)); err != nil {
		t.Fatal(err)
	}
	plans, err := pipeline.Load("t.yaml", []byte(cases[0].yaml))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	writeExport(t, file, recs)
	var outs [2][]map[string]any
	for i, input := range []string{file, h.ClientURL() + "/eddy_up?subject=eddy.up.edge-1.>&domain=hub"} {
		out := t.TempDir()
		p, err := eddybeam.Translate(plans[0], eddybeam.Options{Input: input, OutputDir: out})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := direct.Execute(ctx, p); err != nil {
			t.Fatalf("%s: %v", input, err)
		}
		outs[i] = readLines(t, filepath.Join(out, "out.jsonl"))
	}
	if len(outs[0]) < 10 {
		t.Fatalf("only %d results from the file", len(outs[0]))
	}
	compare(t, "hub input vs exported file", outs[1], outs[0])
	if _, _, err := eddybeam.ParseHubInput("nats:///eddy_up"); err == nil {
		t.Error("a hub input without a host was accepted")
	}
}
