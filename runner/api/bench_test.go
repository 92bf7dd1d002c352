package api

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-edge/eddy/runner/engine"
)

// BenchmarkScrape measures one /metrics collection over a real backend
// with 10 pipelines (the cost is paid per scrape, not per event).
func BenchmarkScrape(b *testing.B) {
	rb := newRealBackend(b)
	for i := range 10 {
		rb.apply(b, strings.Replace(thermoYAML, "name: hot", fmt.Sprintf("name: hot-%d", i), 1))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(rb))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAlertList measures splitting a full alert history (500).
func BenchmarkAlertList(b *testing.B) {
	recs := make([]engine.AlertRecord, 500)
	for i := range recs {
		recs[i] = engine.AlertRecord{Pipeline: "ns/p", Time: time.Unix(int64(i), 0),
			Fields: map[string]any{"alert_id": fmt.Sprint(i % 50), "state": []string{"firing", "resolved"}[i%2], "severity": "warning"}}
	}
	b.ReportAllocs()
	for b.Loop() {
		alertList(recs)
	}
}

func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{
		"event: output\ndata: {\"a\":1}\n\n",
		": ping\n\n",
		"data: a\ndata: b\n\n",
		"event: x\n\nevent",
		"data:\n\n",
		strings.Repeat("data: x\n", 100) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var n int
		err := ReadSSE(bytes.NewReader(in), func(e Event) error {
			n++
			if e.Name == "" {
				t.Fatal("event without name")
			}
			// Each event ends at a blank line, so needs at least one line break.
			if bytes.Count(in, []byte("\n"))+bytes.Count(in, []byte("\r")) < n {
				t.Fatalf("%d events from %q", n, in)
			}
			return nil
		})
		if err != nil && err != io.ErrUnexpectedEOF && !strings.Contains(err.Error(), "token too long") {
			t.Fatalf("ReadSSE: %v", err)
		}
	})
}
