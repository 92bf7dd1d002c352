package wal

// tailCache is a ring of the most recently written records, so that readers
// who keep up never touch the segment files. The caller holds the log lock.
type tailCache struct {
	recs     []Record
	head     int    // index of the oldest record in recs
	n        int    // records held
	first    uint64 // offset of the oldest record held (next offset when empty)
	bytes    int64
	maxBytes int64
}

func (c *tailCache) init(records int, maxBytes int64, next uint64) {
	c.recs = make([]Record, records)
	c.maxBytes = maxBytes
	c.first = next
}

func recordMem(r *Record) int64 {
	return int64(len(r.Payload)+len(r.Topic)+len(r.Client)) + 64
}

// push appends r, whose offset must follow the newest record held.
func (c *tailCache) push(r Record) {
	if c.n > 0 && r.Offset != c.first+uint64(c.n) {
		c.dropBefore(^uint64(0)) // out of sequence: start over
	}
	if c.n == 0 {
		c.first = r.Offset
	}
	if c.n == len(c.recs) {
		c.pop()
	}
	c.recs[(c.head+c.n)%len(c.recs)] = r
	c.n++
	c.bytes += recordMem(&r)
	for c.bytes > c.maxBytes && c.n > 1 {
		c.pop()
	}
}

func (c *tailCache) pop() {
	r := &c.recs[c.head]
	c.bytes -= recordMem(r)
	*r = Record{}
	c.head = (c.head + 1) % len(c.recs)
	c.n--
	c.first++
}

// dropBefore removes records with offsets below off.
func (c *tailCache) dropBefore(off uint64) {
	for c.n > 0 && c.first < off {
		c.pop()
	}
	if c.n == 0 && off != ^uint64(0) && off > c.first {
		c.first = off
	}
}

// get returns the cached record at off, or nil.
func (c *tailCache) get(off uint64) *Record {
	if c.n == 0 || off < c.first || off >= c.first+uint64(c.n) {
		return nil
	}
	return &c.recs[(c.head+int(off-c.first))%len(c.recs)]
}

// copyFrom copies cached records from offset from up to last into buf.
func (c *tailCache) copyFrom(from, last uint64, buf []Record) int {
	if c.n == 0 || from < c.first || from > last {
		return 0
	}
	end := min(c.first+uint64(c.n), last+1)
	k := 0
	for off := from; off < end && k < len(buf); off++ {
		buf[k] = c.recs[(c.head+int(off-c.first))%len(c.recs)]
		k++
	}
	return k
}
