package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/runner/wal"
)

// A shared source reads the log once for every pipeline on the same source
// (topic filter and format) and decodes each matching record once, into
// events that every member then reads: 300 filter pipelines on one topic
// cost one decode per message instead of 300 (eKuiper's shared streams).
//
// Each member keeps its own goroutine, cursor, checkpoints, sinks and
// retries: it only takes decoded records from the shared ring instead of
// reading and decoding the log itself, so a member that stalls (a failing
// sink) lags alone and everything else keeps its pace. A member whose
// cursor is not in the ring — behind it (lagging, or restarting from an
// old checkpoint), or at records decoded before it joined without the
// fields it reads — reads the log and decodes on its own, as a pipeline
// without a shared source does, until it reaches the ring.
//
// Decoded events are immutable and shared: a member whose steps change
// fields (map, select, drop, enrich) copies the fields of each event first.
//
// Members are woken at most once per linger interval (leading edge: the
// first record after a quiet interval wakes them at once), so at 500 msg/s
// 300 members wake about 200 times a second each, with 2–3 records.
//
// A member whose first step is a filter (an operators.Screener) and whose
// chain holds no time-driven step is woken only for records that its
// filter passes (the reader evaluates the condition, on a VM of its own);
// records it would drop wait in the ring until one passes, the backlog
// reaches a quarter of the ring or maxDefer has passed. Then the member
// processes them itself, in order, as if woken for each: its output,
// counts and checkpoints are the same, its cursor is at most maxDefer
// behind. With 300 filter pipelines of which few match, this turns
// 60,000 wake-ups a second into a few thousand.
//
// The engine creates a shared source when a second pipeline on the same
// source starts and closes it when fewer than two remain: one pipeline
// alone reads the log directly, with no extra hop.
type sharedSource struct {
	key sourceKey
	log Log
	cap int // ring capacity (records)

	mu      sync.RWMutex // members take under the read lock, all at once after a wake
	members map[*run]*member
	list    []*member    // members, for the reader to walk; replaced (never changed) on join and leave
	dec     mqtt.Decoder // the union of the members' projections
	gen     uint64       // bumped when dec changes
	ring    []sharedRec  // ring[i % cap] holds offset first+i
	first   uint64       // offset of the oldest record in the ring
	n       int          // records in the ring
	next    uint64       // next offset the reader reads
	closed  bool
	lastW   time.Time // last wake of due members
	due     bool      // some member is due a wake
	deferAt time.Time // when the oldest deferred record was published; zero: none

	cancel context.CancelFunc
	done   chan struct{}
}

// sourceKey identifies a source that pipelines can share.
type sourceKey struct {
	filter string
	format mqtt.Format
}

// member is one pipeline reading from the shared source.
type member struct {
	fields memberFields
	wake   chan struct{}             // the run's, capacity 1: a send never blocks and is never lost
	screen func(map[string]any) bool // nil: every record wakes the member

	// Owned by the reader goroutine (set by join before the member is
	// listed).
	due      bool // a record the member must see soon was published since its last wake
	deferred int  // records published since its last wake that it would drop
}

// memberFields is what a member reads: nil names and all false means
// nothing beyond raw bytes.
type memberFields struct {
	names []string
	all   bool
}

// sharedRec is one log record as the shared source decoded it. Every
// field is immutable once published in the ring.
type sharedRec struct {
	offset  uint64
	time    int64
	topic   string
	payload []byte // the raw payload (dead letters)
	match   bool   // the topic matches the source's filter
	gen     uint64
	events  []mqtt.Decoded
	err     error // decoding failed (no events)
}

// newSharedSource starts the reader at the log's next record.
func newSharedSource(key sourceKey, log Log, capacity int) *sharedSource {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharedSource{key: key, log: log, cap: capacity, members: map[*run]*member{},
		ring: make([]sharedRec, capacity), cancel: cancel, done: make(chan struct{})}
	s.next = log.Last() + 1
	s.first = s.next
	s.dec = mqtt.Decoder{Format: key.format, Fields: mqtt.NewProjection(nil)}
	go s.read(ctx)
	return s
}

// join adds a member reading fields, woken on wake (capacity 1), screened
// by screen when it is not nil; it returns the generation from which the
// ring's records carry every field the member reads.
func (s *sharedSource) join(r *run, f memberFields, wake chan struct{}, screen func(map[string]any) bool) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[r] = &member{fields: f, wake: wake, screen: screen, due: true}
	s.due = true
	s.relist()
	return s.reproject()
}

// leave removes a member; it reports whether members remain.
func (s *sharedSource) leave(r *run) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members, r)
	s.relist()
	if len(s.members) > 0 {
		s.reproject()
	}
	return len(s.members) > 0
}

// relist replaces list after a change of members; the caller holds mu.
func (s *sharedSource) relist() {
	list := make([]*member, 0, len(s.members))
	for _, m := range s.members {
		list = append(list, m)
	}
	s.list = list
}

// reproject sets the decoder to the union of the members' fields; the
// caller holds mu. It returns the generation whose records carry them.
func (s *sharedSource) reproject() uint64 {
	union := map[string]bool{}
	all := false
	for _, m := range s.members {
		f := m.fields
		all = all || f.all
		for _, n := range f.names {
			union[n] = true
		}
	}
	var p *mqtt.Projection
	if !all {
		names := make([]string, 0, len(union))
		for n := range union {
			names = append(names, n)
		}
		p = mqtt.NewProjection(names)
	}
	if !sameProjection(s.dec.Fields, p) {
		s.dec.Fields = p
		s.gen++
	}
	return s.gen
}

func sameProjection(a, b *mqtt.Projection) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Covers(b) && b.Covers(a)
}

// close stops the reader and wakes every member (they go back to the log).
func (s *sharedSource) close() {
	s.cancel()
	<-s.done
}

// read is the reader goroutine: it reads the log from next, decodes what
// matches, publishes it in the ring and wakes the members.
func (s *sharedSource) read(ctx context.Context) {
	defer close(s.done)
	defer func() {
		s.mu.Lock()
		s.closed = true
		for _, m := range s.list {
			signal(m.wake) // they read the log themselves from now on
		}
		s.mu.Unlock()
	}()
	buf := make([]wal.Record, 256)
	for {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := s.wakeDue(); ok {
			// Records wait for the linger to end: read until then.
			wctx, cancel = context.WithTimeout(ctx, d)
		}
		n, err := s.log.Read(wctx, s.next, buf)
		cancel()
		if n > 0 {
			s.publish(buf[:n])
		}
		var gap *wal.GapError
		var ahead *wal.AheadError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &gap):
			s.restart(gap.First)
		case errors.As(err, &ahead):
			s.restart(ahead.Last + 1)
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return // the log is closed or broken: members read it themselves and see why
		}
		s.maybeWake()
	}
}

// restart empties the ring and goes on from off (records were removed by
// retention, or the log restarted behind us).
func (s *sharedSource) restart(off uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.first, s.next = 0, off, off
	clear(s.ring)
}

// publish decodes recs, adds them to the ring and notes which members
// they are due for.
func (s *sharedSource) publish(recs []wal.Record) {
	s.mu.Lock()
	dec, gen, list := s.dec, s.gen, s.list
	s.mu.Unlock()
	// Decode and screen outside the lock: members read older records
	// meanwhile.
	out := make([]sharedRec, len(recs))
	for i := range recs {
		rec := &recs[i]
		sr := sharedRec{offset: rec.Offset, time: rec.Time, topic: rec.Topic, payload: rec.Payload, gen: gen,
			match: mqtt.MatchTopic(s.key.filter, rec.Topic)}
		if sr.match {
			sr.err = dec.Decode(rec.Topic, rec.Payload, func(d mqtt.Decoded) { sr.events = append(sr.events, d) })
		}
		out[i] = sr
	}
	deferred, due := false, false
	for _, m := range list {
		deferred = m.screenBatch(out) || deferred
		due = due || m.due
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sr := range out {
		if sr.offset != s.first+uint64(s.n) {
			// Out of sequence (a restart raced with this batch): drop the batch.
			return
		}
		if s.n == s.cap {
			s.ring[s.first%uint64(s.cap)] = sharedRec{}
			s.first++
			s.n--
		}
		s.ring[sr.offset%uint64(s.cap)] = sr
		s.n++
		s.next = sr.offset + 1
	}
	s.due = s.due || due
	if deferred && s.deferAt.IsZero() {
		s.deferAt = time.Now()
	}
}

// screenBatch notes whether recs are due for m: a record is, unless m's
// screen says m drops every event in it. It reports whether some were
// deferred. Called by the reader only.
func (m *member) screenBatch(recs []sharedRec) (deferred bool) {
	if m.due {
		return false // woken anyway: nothing to decide
	}
	if m.screen == nil {
		m.due = true
		return false
	}
	for i := range recs {
		sr := &recs[i]
		if !sr.match {
			m.deferred++
			continue
		}
		if sr.err != nil {
			m.due = true // a dead letter to write
			return false
		}
		for _, d := range sr.events {
			if m.screen(d.Fields) {
				m.due = true
				return false
			}
		}
		m.deferred++
	}
	return m.deferred > 0
}

// Waking a member costs about a microsecond of CPU (a goroutine switch and
// a take), so members are woken at most every lingerPerMember × members,
// at most maxLinger: the wake-ups then cost a few percent of a core at any
// rate, and an event waits at most that long for its pipelines (none
// after a quiet interval: the first record wakes them at once). Records a
// member's screen drops wait at most maxDefer. Real time: these are cost
// knobs, not semantics.
const (
	lingerPerMember = 20 * time.Microsecond
	maxLinger       = 5 * time.Millisecond
	maxDefer        = 100 * time.Millisecond
)

// linger is the least time between wakes; the caller holds mu.
func (s *sharedSource) linger() time.Duration {
	return min(maxLinger, lingerPerMember*time.Duration(len(s.members)))
}

// wakeDue returns how long until members are due to be woken.
func (s *sharedSource) wakeDue() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	switch {
	case s.due:
		d = s.linger() - time.Since(s.lastW)
		if !s.deferAt.IsZero() {
			d = min(d, maxDefer-time.Since(s.deferAt))
		}
	case !s.deferAt.IsZero():
		d = maxDefer - time.Since(s.deferAt)
	default:
		return 0, false
	}
	return max(d, time.Microsecond), true
}

// maybeWake wakes the members that are due, if the last wake is at least
// a linger ago (or there was none): leading-edge throttling; and those
// with deferred records when the oldest has waited maxDefer, or when a
// member's backlog reaches a quarter of the ring.
func (s *sharedSource) maybeWake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	wakeDue := s.due && now.Sub(s.lastW) >= s.linger()
	flush := !s.deferAt.IsZero() && now.Sub(s.deferAt) >= maxDefer
	if wakeDue {
		s.lastW, s.due = now, false
	}
	if flush {
		s.deferAt = time.Time{}
	}
	for _, m := range s.list {
		if m.due && wakeDue || m.deferred > 0 && (flush || m.deferred >= s.cap/4) {
			m.due, m.deferred = false, 0
			signal(m.wake)
		}
	}
}

// signal wakes whoever waits on c (capacity 1) without blocking: a signal
// already pending is enough.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// take copies records from offset from into out for a member that needs
// generation gen or later. ok is false when from is not in the ring (or
// its record was decoded before gen): the member reads the log itself.
// n == 0 with ok means nothing new yet: wait for the member's wake channel.
func (s *sharedSource) take(from, gen uint64, out []sharedRec) (n int, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.takeLocked(from, gen, out)
}

func (s *sharedSource) takeLocked(from, gen uint64, out []sharedRec) (n int, ok bool) {
	if s.closed {
		return 0, false
	}
	end := s.first + uint64(s.n)
	if from < s.first || from > end {
		return 0, false
	}
	for off := from; off < end && n < len(out); off++ {
		sr := s.ring[off%uint64(s.cap)]
		if sr.gen < gen {
			return n, n > 0
		}
		out[n] = sr
		n++
	}
	return n, true
}

// share counts the pipelines on one source and holds its shared source
// while there are at least two.
type share struct {
	key  sourceKey
	runs int // guarded by Engine.mu
	src  atomic.Pointer[sharedSource]
}

// closedChan is ready at once.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// attachShare counts r on its source and starts the shared source when r
// is the second pipeline on it.
func (e *Engine) attachShare(r *run) {
	key := sourceKey{filter: r.topicFilter, format: r.format}
	e.mu.Lock()
	defer e.mu.Unlock()
	sh := e.shares[key]
	if sh == nil {
		sh = &share{key: key}
		e.shares[key] = sh
	}
	sh.runs++
	r.share = sh
	if sh.runs >= 2 && sh.src.Load() == nil {
		sh.src.Store(newSharedSource(key, e.opts.Log, e.opts.SharedRing))
	}
}

// detachShare is called by r's goroutine as it ends: r leaves the shared
// source, which closes when fewer than two pipelines remain on it.
func (e *Engine) detachShare(r *run) {
	if r.joined != nil {
		r.joined.leave(r)
		r.joined = nil
	}
	sh := r.share
	if sh == nil {
		return
	}
	e.mu.Lock()
	sh.runs--
	var stop *sharedSource
	if sh.runs < 2 {
		stop = sh.src.Swap(nil)
	}
	if sh.runs == 0 && e.shares[sh.key] == sh {
		delete(e.shares, sh.key)
	}
	e.mu.Unlock()
	if stop != nil {
		stop.close() // members still joined fall back to the log
	}
}

// sharedSource returns the shared source r reads from, joining (or
// leaving) as the engine started (or stopped) one; nil when there is none.
func (r *run) sharedSource() *sharedSource {
	var src *sharedSource
	if r.share != nil {
		src = r.share.src.Load()
	}
	if src != r.joined {
		if r.joined != nil {
			r.joined.leave(r)
		}
		r.joined = src
		if src != nil {
			r.joinedGen = src.join(r, r.reads, r.sharedWake, r.screen)
		}
	}
	return src
}
