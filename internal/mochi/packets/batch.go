package packets

// eddy: Batch collects the subscribers whose deliveries a publisher had
// encoded straight into their write buffers (Server.PublishBatched)
// instead of queueing them for their write loops, so that the publisher
// flushes each once when its batch ends: one write system call per
// subscriber per batch, and no write loop woken per delivery. A Batch
// belongs to one publishing goroutine.
type Batch struct {
	pending []BatchWriter
	seen    map[BatchWriter]struct{} // dedup once pending is long
}

// BatchWriter is a subscriber holding deliveries of a Batch.
type BatchWriter interface {
	// FlushBatched writes the buffered deliveries, never waiting on the
	// network (what the connection does not take now is left to the
	// subscriber's write loop).
	FlushBatched()
}

// batchScan is how many pending writers Add compares directly before it
// keeps a set.
const batchScan = 16

// Add records that w holds deliveries of this batch.
func (b *Batch) Add(w BatchWriter) {
	if b.seen != nil {
		if _, ok := b.seen[w]; ok {
			return
		}
		b.seen[w] = struct{}{}
		b.pending = append(b.pending, w)
		return
	}
	for _, p := range b.pending {
		if p == w {
			return
		}
	}
	b.pending = append(b.pending, w)
	if len(b.pending) > batchScan {
		b.seen = make(map[BatchWriter]struct{}, 2*len(b.pending))
		for _, p := range b.pending {
			b.seen[p] = struct{}{}
		}
	}
}

// Len is the number of subscribers holding deliveries.
func (b *Batch) Len() int { return len(b.pending) }

// Flush writes every pending subscriber's deliveries and empties the batch.
func (b *Batch) Flush() {
	for i, w := range b.pending {
		w.FlushBatched()
		b.pending[i] = nil
	}
	b.pending = b.pending[:0]
	clear(b.seen) // kept: a publisher with many subscribers needs it again
}
