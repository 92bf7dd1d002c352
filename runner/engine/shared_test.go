package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/wal"
)

func appendN(t *testing.T, log wal.Log, topic string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := log.Append(context.Background(), &wal.Record{Topic: topic, Payload: []byte(fmt.Sprintf(`{"i":%d,"x":"y"}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharedSourceDecodesOnceForAll: members take the same decoded
// records, with the union of their fields; a member needing fields added
// later is sent back to the log for records decoded before it joined.
func TestSharedSourceDecodesOnceForAll(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	appendN(t, log, "other", 0, 2) // before the source: never in its ring
	s := newSharedSource(sourceKey{filter: "a/#", format: "json"}, log, 8, time.Millisecond)
	defer s.close()
	m1, m2 := &run{}, &run{}
	g1 := s.join(m1, memberFields{names: []string{"i"}})
	appendN(t, log, "a/b", 0, 3)
	appendN(t, log, "other", 0, 1)
	buf := make([]sharedRec, 16)
	mqtttest.WaitFor(t, "four records in the ring", func() bool {
		n, ok, _ := s.take(3, g1, buf)
		return ok && n == 4
	})
	n, _, _ := s.take(3, g1, buf)
	for i, sr := range buf[:n] {
		if sr.offset != uint64(3+i) {
			t.Fatalf("record %d has offset %d", i, sr.offset)
		}
		if i < 3 {
			if !sr.match || len(sr.events) != 1 || sr.events[0].Fields["i"] != float64(i) || len(sr.events[0].Fields) != 1 {
				t.Fatalf("record %d: %+v", i, sr)
			}
		} else if sr.match || sr.events != nil {
			t.Fatalf("a record of another topic was decoded: %+v", sr)
		}
	}
	if _, ok, _ := s.take(1, g1, buf); ok {
		t.Fatal("offsets before the ring must be read from the log")
	}
	// A second member reads x as well: older records lack it.
	g2 := s.join(m2, memberFields{names: []string{"x"}})
	if _, ok, _ := s.take(3, g2, buf); ok {
		t.Fatal("records decoded without x served to a member that reads x")
	}
	appendN(t, log, "a/c", 10, 1)
	mqtttest.WaitFor(t, "the new record", func() bool { n, ok, _ := s.take(7, g2, buf); return ok && n == 1 })
	if f := buf[0].events[0].Fields; f["x"] != "y" || f["i"] != float64(10) {
		t.Fatalf("fields %v, want the union of both members'", f)
	}
	// The ring holds 8: older records fall out.
	appendN(t, log, "a/b", 20, 10)
	mqtttest.WaitFor(t, "the ring moves on", func() bool { _, ok, _ := s.take(7, g2, buf); return !ok })
	if n, ok, _ := s.take(log.Last()-7, g2, buf); !ok || n != 8 {
		t.Fatalf("the last 8 records: n=%d ok=%v", n, ok)
	}
	if s.leave(m1) != true || s.leave(m2) != false {
		t.Fatal("leave miscounts members")
	}
}

// TestSharedSourceWakes: a member waiting on the wake channel from take is
// woken when a record arrives, even if it arrives right after take.
func TestSharedSourceWakes(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	s := newSharedSource(sourceKey{filter: "a"}, log, 64, 5*time.Millisecond)
	defer s.close()
	g := s.join(&run{}, memberFields{all: true})
	from := log.Last() + 1
	for i := range 20 {
		n, ok, wake := s.take(from, g, make([]sharedRec, 1))
		if !ok || n != 0 {
			t.Fatalf("round %d: n=%d ok=%v", i, n, ok)
		}
		appendN(t, log, "a", i, 1)
		select {
		case <-wake:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no wake", i)
		}
		from++
	}
}
