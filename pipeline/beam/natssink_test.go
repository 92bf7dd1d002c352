package beam_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// TestCloudSink runs a pipeline with a file and a cloud sink on Beam and
// requires the hub's up stream to hold exactly the file's records, under
// eddy.up.<node>.<subject> with the outbox's headers; a second run of the
// same job stores nothing new (its message ids are the first run's).
func TestCloudSink(t *testing.T) {
	h, js := startHub(t)
	yaml := strings.Replace(cases[0].yaml, "    - file: {path: out.jsonl}\n",
		"    - file: {path: out.jsonl}\n    - cloud: {subject: \"windows.{{key}}\"}\n", 1)
	plans, err := pipeline.Load("cloud.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "export.jsonl")
	writeExport(t, input, recorded(7, 3*time.Second, 5*time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cloud := h.ClientURL() + "?domain=hub&node=replay-1"
	var want []map[string]any
	for run := 0; run < 2; run++ {
		out := t.TempDir()
		bp, err := eddybeam.Translate(plans[0], eddybeam.Options{Input: input, OutputDir: out, Cloud: cloud})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := direct.Execute(ctx, bp); err != nil {
			t.Fatal(err)
		}
		want = readLines(t, filepath.Join(out, "out.jsonl"))
	}
	if len(want) < 10 {
		t.Fatalf("only %d results", len(want))
	}
	stream, err := js.Stream(ctx, "eddy_up")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"eddy.up.replay-1.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for len(got) < 2*len(want) {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var fields map[string]any
			if err := json.Unmarshal(m.Data(), &fields); err != nil {
				t.Fatal(err)
			}
			key, _ := fields["key"].(string)
			if want := "eddy.up.replay-1.windows." + key; m.Subject() != want {
				t.Fatalf("subject %s, want %s", m.Subject(), want)
			}
			if m.Headers().Get("Eddy-Topic") != "$eddy/up/windows."+key || m.Headers().Get("Eddy-Time") == "" || m.Headers().Get("Nats-Msg-Id") == "" {
				t.Fatalf("headers %v", m.Headers())
			}
			got = append(got, fields)
		}
		if n == 0 {
			break
		}
	}
	compare(t, "stored in the hub (two runs)", got, want)
}

// TestLiveCloudSink: a live job publishes its alerts back to the hub under
// its own node while it reads the edges' data: the stream then holds the
// edge engine's alerts.
func TestLiveCloudSink(t *testing.T) {
	h, js := startHub(t)
	var c = cases[len(cases)-1] // alert-no-window
	yaml := strings.Replace(c.yaml, "    - file: {path: out.jsonl}\n", "    - cloud: {subject: \"alerts.{{key}}\"}\n", 1)
	plans, err := pipeline.Load("cloud.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	edgePlans, err := pipeline.Load("edge.yaml", []byte(c.yaml))
	if err != nil {
		t.Fatal(err)
	}
	recs := recorded(42, c.shuffle, 5*time.Minute)
	edgeDir := t.TempDir()
	runEdge(t, edgePlans[0], recs, edgeDir)
	want := readLines(t, filepath.Join(edgeDir, "out.jsonl"))
	forward(t, js, "edge-1", recs)
	bp, err := eddybeam.Translate(plans[0], eddybeam.Options{Input: h.ClientURL() + "/eddy_up?subject=eddy.up.edge-1.>&domain=hub&live=true",
		Cloud: h.ClientURL() + "?domain=hub&node=beam-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eddybeam.Execute(ctx, eddybeam.RunnerPrism, bp) // cancelled at its job service when the test ends
	stream, err := js.Stream(ctx, "eddy_up")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"eddy.up.beam-1.alerts.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && len(got) < len(want); {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var fields map[string]any
			if err := json.Unmarshal(m.Data(), &fields); err != nil {
				t.Fatal(err)
			}
			got = append(got, fields)
		}
	}
	compare(t, "alerts stored in the hub by the live job", got, want)
}
