package wal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

func benchLog(b *testing.B, o Options) *File {
	b.Helper()
	o.Clock = clock.Real{}
	l, err := Open(context.Background(), b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func benchRecord() *Record {
	return &Record{Topic: "$ke/events/device/default/thermo-1/data/update", Payload: make([]byte, 100), QoS: 1, Client: "thermo-1"}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAppendBuffered(b *testing.B) {
	l := benchLog(b, Options{Durability: Buffered})
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(context.Background(), benchRecord()); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkAppendDurable(b *testing.B) {
	for _, c := range []struct {
		writers int
		delay   time.Duration
	}{{1, 0}, {8, 0}, {64, 0}, {1, 2 * time.Millisecond}, {64, 2 * time.Millisecond}} {
		writers := c.writers
		name := fmt.Sprintf("writers=%d", writers)
		if c.delay > 0 {
			name += "/maxdelay=" + c.delay.String()
		}
		b.Run(name, func(b *testing.B) {
			l := benchLog(b, Options{MaxDelay: c.delay})
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / writers
			for w := 0; w < writers; w++ {
				n := per
				if w == 0 {
					n += b.N % writers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						if err := l.Append(context.Background(), benchRecord()); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			reportRate(b)
			st := l.Stats()
			if st.Fsyncs > 0 {
				b.ReportMetric(float64(st.Appends)/float64(st.Fsyncs), "records/fsync")
			}
		})
	}
}

func fillLog(b *testing.B, l Log, n int) {
	b.Helper()
	recs := make([]*Record, 0, 1000)
	for i := 0; i < n; i += 1000 {
		recs = recs[:0]
		for j := 0; j < 1000 && i+j < n; j++ {
			recs = append(recs, benchRecord())
		}
		if err := l.AppendWith(context.Background(), Buffered, recs...); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRead(b *testing.B, l Log, n int) {
	buf := make([]Record, 256)
	from := uint64(1)
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for read < b.N {
		if from > uint64(n) {
			from = 1
		}
		k, err := l.Read(context.Background(), from, buf)
		if err != nil {
			b.Fatal(err)
		}
		from += uint64(k)
		read += k
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkReadTailCache(b *testing.B) {
	const n = 8000
	l := benchLog(b, Options{CacheRecords: 8192})
	fillLog(b, l, n)
	benchRead(b, l, n)
	if st := l.Stats(); st.DiskReads != 0 {
		b.Fatalf("%d records came from disk", st.DiskReads)
	}
}

func BenchmarkReadDisk(b *testing.B) {
	const n = 100000
	l := benchLog(b, Options{CacheRecords: 1})
	fillLog(b, l, n)
	benchRead(b, l, n-1) // stay below the one cached record
}

func BenchmarkMemoryAppend(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	defer m.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Append(context.Background(), benchRecord()); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
