package wal

// closedChan is returned by Wait when there is nothing to wait for.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Wait implements Log.
func (m *Memory) Wait(from uint64) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if from == 0 {
		from = 1
	}
	// Read returns at once for a record, a gap (from < first) or a cursor
	// beyond the end (from > last+1); it blocks only at last+1.
	if m.closed || from != m.first+uint64(len(m.recs)) {
		return closedChan
	}
	return m.notify
}

// Wait implements Log.
func (l *File) Wait(from uint64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from == 0 {
		from = 1
	}
	if l.closed || from != l.written+1 || from < l.first {
		return closedChan
	}
	return l.notify
}
