package beam

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/pipeline"
)

// TestLiveReaderSplitMidBatch: when the runner splits the reader's
// restriction while it works through a fetched batch (prism does, under
// load), the claim of the first sequence past the split fails and the call
// ends; the residual must then start reading at that sequence. The reader
// used to keep its ordered consumer for the next call, which had already
// delivered the rest of the batch: those messages were lost (seen as a
// missing alert episode in TestLiveParity under load).
func TestLiveReaderSplitMidBatch(t *testing.T) {
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
	const n = 20
	for i := 1; i <= n; i++ {
		if _, err := js.Publish(ctx, "eddy.up.edge-1.readings", fmt.Appendf(nil, `{"device":"m1","seq":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: \"#\"}}\n  key: device\n  sinks: [{file: {path: o}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(pipeline.Pipeline{APIVersion: pipeline.APIVersion, Kind: pipeline.Kind,
		Metadata: pipeline.ObjectMeta{Name: "p"}, Spec: plans[0].Spec})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := ParseHubInput(h.ClientURL() + "/eddy_up?domain=hub&live=true")
	if err != nil {
		t.Fatal(err)
	}
	f := &liveReadFn{In: in, Decode: decodeFn{Spec: spec}, Idle: int64(time.Hour), Ordered: true}
	if err := f.Setup(); err != nil {
		t.Fatal(err)
	}
	defer f.Teardown()
	var got []int64
	emit := func(_ beam.EventTime, r Rec) { got = append(got, r.Offset) }
	we := f.CreateWatermarkEstimator(f.InitialWatermarkEstimatorState(0, offsetrange.Restriction{}, nil))
	// The runner split the restriction at sequence 8 before the call
	// claimed it: the call reads 1..7 of the batch it fetched and stops.
	rt := f.CreateTracker(offsetrange.Restriction{Start: 1, End: 8})
	if _, err := f.ProcessElement(ctx, we, rt, nil, emit); err != nil {
		t.Fatal(err)
	}
	// The residual, [8, ∞), read until the stream is exhausted.
	for rest := (offsetrange.Restriction{Start: 8, End: math.MaxInt64}); len(got) < n; {
		rt = f.CreateTracker(rest)
		before := len(got)
		if _, err := f.ProcessElement(ctx, we, rt, nil, emit); err != nil {
			t.Fatal(err)
		}
		if len(got) == before {
			break // an empty fetch: nothing more to read
		}
		rest.Start = got[len(got)-1] + 1
	}
	if len(got) != n {
		t.Fatalf("read sequences %v, want 1..%d", got, n)
	}
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("read sequences %v, want 1..%d in order", got, n)
		}
	}
}

// TestSeqTrackerSplit: a checkpoint (fraction 0) between calls splits at
// the first unclaimed sequence; a split while a call reads, or one that
// asks for a fraction, is refused.
func TestSeqTrackerSplit(t *testing.T) {
	tr := &seqTracker{rest: offsetrange.Restriction{Start: 1, End: math.MaxInt64}, claimed: 0, end: func() int64 { return 10 }}
	for s := int64(1); s <= 3; s++ {
		if !tr.TryClaim(s) {
			t.Fatalf("claim %d refused", s)
		}
	}
	tr.busy = true
	if _, res, _ := tr.TrySplit(0); res != nil {
		t.Fatalf("split while reading: residual %v", res)
	}
	tr.busy = false
	if _, res, _ := tr.TrySplit(0.5); res != nil {
		t.Fatalf("split at 0.5: residual %v", res)
	}
	prim, res, err := tr.TrySplit(0)
	if err != nil || res == nil {
		t.Fatalf("checkpoint: %v, %v", res, err)
	}
	if p, r := prim.(offsetrange.Restriction), res.(offsetrange.Restriction); p.End != 4 || r.Start != 4 || r.End != math.MaxInt64 {
		t.Fatalf("checkpoint split into %v and %v, want [1,4) and [4,∞)", p, r)
	}
	if tr.TryClaim(int64(4)) {
		t.Fatal("claimed 4 after the checkpoint")
	}
}
