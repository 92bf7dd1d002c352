package window

// entry schedules a window of one key to close when the watermark reaches
// end. Entries can go stale (a session merged away or grew, a key's next
// window rescheduled); closeUpTo checks them against the key's state.
type entry struct {
	end int64
	key string
	ks  *keyState
	id  uint64 // sessions only
}

func (a *entry) less(b *entry) bool {
	if a.end != b.end {
		return a.end < b.end
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.id < b.id
}

// closeHeap is a binary min-heap of entries ordered by (end, key, id). It
// is typed to avoid container/heap's interface boxing on the hot path.
type closeHeap []entry

func (h *closeHeap) push(e entry) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(&s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *closeHeap) pop() entry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = entry{}
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].less(&s[l]) {
			m = r
		}
		if !s[m].less(&s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
