package twin

import (
	"context"
	"strconv"
	"testing"
)

func benchUpdates(b *testing.B, store Store) {
	r := newRig(b, store)
	r.m.opts.OnEvent = nil
	r.m.opts.Publisher = PublisherFunc(func(string, []byte, byte, bool) error { return nil })
	r.setup(b)
	ctx := context.Background()
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = []byte(`{"event_id":"e","twin":{"temperature":{"actual":{"value":"` + strconv.Itoa(i) + `"}}}}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := r.m.HandleMessage(ctx, updTopic, payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	r.m.Close()
}

// BenchmarkHandleUpdate measures twin/update messages per second through
// HandleMessage: decode, validate, persist, result + document + delta.
func BenchmarkHandleUpdate(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchUpdates(b, NewMemStore()) })
	b.Run("file-nosync", func(b *testing.B) {
		s, err := OpenFileStore(b.TempDir(), FileStoreOptions{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		benchUpdates(b, s)
	})
	b.Run("file-fsync", func(b *testing.B) {
		s, err := OpenFileStore(b.TempDir(), FileStoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchUpdates(b, s)
	})
}

// BenchmarkValues measures the enrichment lookup.
func BenchmarkValues(b *testing.B) {
	r := newRig(b, nil)
	r.setup(b)
	if err := r.m.HandleMessage(context.Background(), updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"25"}},"mode":{"expected":{"value":"eco"}}}}`)); err != nil {
		b.Fatal(err)
	}
	props := []string{"temperature", "mode"}
	dst := map[string]any{}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := map[string]any{}
		for pb.Next() {
			r.m.Values(dev, props, dst)
		}
	})
	_ = dst
}
