package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/runner/wal"
)

// UpTopicPrefix is the WAL topic prefix of data bound for the hub: a record
// on $eddy/up/<subject> is forwarded to eddy.up.<node>.<subject>. The cloud
// sink and the built-in alert uplink write there.
const UpTopicPrefix = "$eddy/up/"

// TwinStreamTopic is the twin stream's WAL topic; its records (twin
// reports) are forwarded to eddy.up.<node>.twin.
const TwinStreamTopic = "$eddy/streams/twin"

// ConsumerName is the outbox's consumer name in the WAL: retention keeps
// what it has not forwarded (with the block policy).
const ConsumerName = "link-outbox"

// Headers set on every forwarded message.
const (
	// HeaderTopic is the WAL topic the record was written under.
	HeaderTopic = "Eddy-Topic"
	// HeaderTime is the record's time in unix nanoseconds (when the edge
	// accepted it). The node is the subject's third token.
	HeaderTime = "Eddy-Time"
)

const (
	outboxBatch    = 256
	outboxInflight = 4096
	saveEvery      = 250 * time.Millisecond
)

// outbox forwards WAL records bound for the hub, in order, each with a
// Nats-Msg-Id (<epoch>-<offset>) so the hub's stream drops resends. Its
// cursor advances only over records the hub acknowledged; it is saved in
// <data-dir>/outbox.json and registered as a WAL consumer. After any
// failure (hub gone, ack timeout) it starts again from the cursor.
type outbox struct {
	l    *Link
	log  wal.Log
	js   jetstream.JetStream
	path string // "" in memory

	epoch     string
	committed atomic.Uint64 // next offset to forward
	saved     uint64

	forwarded, duplicates, errs atomic.Uint64

	warnMu   sync.Mutex
	lastWarn time.Time
}

// cursorFile is the outbox's saved state.
type cursorFile struct {
	// Epoch makes message ids unique across data dirs: a wiped data dir
	// restarts offsets at 1 and must not collide with ids the hub still
	// remembers.
	Epoch string `json:"epoch"`
	// Next is the next offset to forward.
	Next uint64 `json:"next"`
}

func newOutbox(l *Link) (*outbox, error) {
	// Always bound the wait for an ack: without a timeout, acks pending
	// when the hub restarts are never resolved (measured: 3.3k records).
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncTimeout(5 * time.Second),
		jetstream.WithPublishAsyncMaxPending(2 * outboxInflight)}
	js, err := jetstream.NewWithDomain(l.nc, l.client.Options().Domain, jsOpts...)
	if err != nil {
		return nil, err
	}
	o := &outbox{l: l, log: l.target.Log(), js: js}
	cf := cursorFile{}
	if l.cfg.DataDir != "" {
		o.path = filepath.Join(l.cfg.DataDir, "outbox.json")
		b, err := os.ReadFile(o.path)
		switch {
		case os.IsNotExist(err):
		case err != nil:
			return nil, fmt.Errorf("link: reading the outbox cursor: %w", err)
		default:
			if err := json.Unmarshal(b, &cf); err != nil || cf.Epoch == "" {
				return nil, fmt.Errorf("link: the outbox cursor %s is corrupt: move it away to forward the whole WAL again (the hub drops what it already has within its duplicate window)", o.path)
			}
		}
	}
	if cf.Epoch == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		cf.Epoch = hex.EncodeToString(b[:])
	}
	if cf.Next == 0 {
		cf.Next = o.log.First()
	}
	o.epoch = cf.Epoch
	o.committed.Store(cf.Next)
	o.log.SetConsumer(ConsumerName, cf.Next)
	if err := o.save(); err != nil {
		return nil, err
	}
	return o, nil
}

// subject maps a WAL topic to the subject it is forwarded under (without
// the up prefix and node), or "" for records that stay on the edge.
func subject(topic string) string {
	switch {
	case strings.HasPrefix(topic, UpTopicPrefix):
		return sanitizeSubject(topic[len(UpTopicPrefix):])
	case topic == TwinStreamTopic:
		return "twin"
	}
	return ""
}

// sanitizeSubject makes s a valid NATS subject: no whitespace, wildcards
// or empty tokens.
func sanitizeSubject(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', '*', '>':
			b[i] = '_'
		}
	}
	toks := strings.Split(string(b), ".")
	for i, t := range toks {
		if t == "" {
			toks[i] = "_"
		}
	}
	return strings.Join(toks, ".")
}

func (o *outbox) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !o.l.connected.Load() {
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		err := o.forward(ctx)
		o.saveLogged()
		if ctx.Err() != nil || errors.Is(err, errDisconnected) {
			continue
		}
		if err != nil {
			o.errs.Add(1)
			o.warn("forwarding the outbox to the hub; will resend from the last acknowledged record", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

var errDisconnected = errors.New("the link to the hub is down")

type inflight struct {
	off uint64
	fut jetstream.PubAckFuture
}

// forward publishes from the cursor until an error or a disconnection.
func (o *outbox) forward(ctx context.Context) error {
	buf := make([]wal.Record, outboxBatch)
	next := o.committed.Load()
	var pending []inflight
	lastSave := time.Now()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	base := o.l.cfg.Fleet.UpSubject(o.l.cfg.Node, "") // eddy.up.<node>.
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !o.l.connected.Load() {
			return errDisconnected
		}
		var n int
		var err error
		if len(pending) < outboxInflight {
			wait := 200 * time.Millisecond
			if len(pending) > 0 {
				wait = time.Millisecond
			}
			rctx, cancel := context.WithTimeout(ctx, wait)
			n, err = o.log.Read(rctx, next, buf[:min(outboxBatch, outboxInflight-len(pending))])
			cancel()
			var gap *wal.GapError
			var ahead *wal.AheadError
			switch {
			case errors.As(err, &gap):
				o.l.log.Error("the outbox lost records to WAL retention before they reached the hub (drop-oldest policy)", "lost", gap.Lost(), "from", gap.From)
				o.errs.Add(gap.Lost())
				next = gap.First
			case errors.As(err, &ahead):
				o.l.log.Error("the outbox cursor is beyond the end of the WAL; continuing at its end", "cursor", next, "last", ahead.Last)
				next = ahead.Last + 1
			case err != nil && !errors.Is(err, context.DeadlineExceeded):
				return err
			}
			for i := range buf[:n] {
				rec := &buf[i]
				subj, ruleIDs := subject(rec.Topic), ""
				if subj == "" {
					if ruleIDs = o.l.routes.matchUp(rec.Topic); ruleIDs != "" {
						subj = fleet.RulesSubject
					}
				}
				if subj != "" {
					msg := nats.NewMsg(base + subj)
					if ruleIDs != "" {
						msg.Header.Set(fleet.HeaderRules, ruleIDs)
					}
					msg.Data = rec.Payload
					msg.Header.Set(jetstream.MsgIDHeader, o.epoch+"-"+strconv.FormatUint(rec.Offset, 10))
					msg.Header.Set(HeaderTopic, rec.Topic)
					msg.Header.Set(HeaderTime, strconv.FormatInt(rec.Time, 10))
					fut, err := o.js.PublishMsgAsync(msg)
					if err != nil {
						return fmt.Errorf("publishing offset %d: %w", rec.Offset, err)
					}
					pending = append(pending, inflight{off: rec.Offset, fut: fut})
				}
				next = rec.Offset + 1
			}
		}
		// Collect acknowledgements in order. Wait for the oldest when the
		// window is full, or (briefly) when nothing new was read, instead
		// of polling the log.
		for len(pending) > 0 {
			head := pending[0]
			var wait <-chan time.Time
			switch {
			case len(pending) >= outboxInflight:
			case n == 0:
				if !idle.Stop() {
					select {
					case <-idle.C:
					default:
					}
				}
				idle.Reset(20 * time.Millisecond)
				wait = idle.C
			default:
				select {
				case ack := <-head.fut.Ok():
					o.acked(ack)
					pending = pending[1:]
					continue
				case err := <-head.fut.Err():
					return fmt.Errorf("offset %d: %w", head.off, err)
				default:
					goto done
				}
			}
			select {
			case ack := <-head.fut.Ok():
				o.acked(ack)
				pending = pending[1:]
				n = 1 // got one: drain the rest without waiting
			case err := <-head.fut.Err():
				return fmt.Errorf("offset %d: %w", head.off, err)
			case <-wait:
				goto done
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	done:
		if len(pending) > 0 {
			o.committed.Store(pending[0].off)
		} else {
			o.committed.Store(next)
		}
		if time.Since(lastSave) >= saveEvery {
			o.saveLogged()
			lastSave = time.Now()
		}
	}
}

func (o *outbox) acked(ack *jetstream.PubAck) {
	o.forwarded.Add(1)
	if ack.Duplicate {
		o.duplicates.Add(1)
	}
}

// save writes the cursor (when it moved) and moves the WAL consumer.
func (o *outbox) save() error {
	next := o.committed.Load()
	if next == o.saved && o.saved != 0 {
		return nil
	}
	o.log.SetConsumer(ConsumerName, next)
	if o.path != "" {
		b, _ := json.Marshal(cursorFile{Epoch: o.epoch, Next: next})
		tmp := o.path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return fmt.Errorf("link: saving the outbox cursor: %w", err)
		}
		if err := os.Rename(tmp, o.path); err != nil {
			return fmt.Errorf("link: saving the outbox cursor: %w", err)
		}
	}
	o.saved = next
	return nil
}

func (o *outbox) saveLogged() {
	if err := o.save(); err != nil {
		o.warn("saving the outbox cursor", "err", err)
	}
}

// warn logs at most once per 10s.
func (o *outbox) warn(msg string, args ...any) {
	o.warnMu.Lock()
	defer o.warnMu.Unlock()
	if time.Since(o.lastWarn) < 10*time.Second {
		return
	}
	o.lastWarn = time.Now()
	o.l.log.Warn(msg, args...)
}

func (o *outbox) status() fleet.OutboxStatus {
	st := fleet.OutboxStatus{Forwarded: o.forwarded.Load(), Duplicates: o.duplicates.Load(), Errors: o.errs.Load()}
	if last, next := o.log.Last(), o.committed.Load(); last+1 > next {
		st.Pending = last + 1 - next
	}
	return st
}

func (o *outbox) close() error { return o.save() }
