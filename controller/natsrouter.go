package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
)

// RulesConsumer is the durable consumer of the up stream from which the
// leader delivers eventbus->rest messages (filter <up prefix>.*.rules).
const RulesConsumer = "eddy_rules"

// rulesAckWait must cover the slowest delivery: every attempt timing out
// plus the backoffs between them.
const rulesAckWait = 5 * time.Minute

// replies routes the edges' replies to the requests waiting for them. One
// wildcard subscription per Fleet (eddy.reply.*.<id>.*); a reply counts
// only if its subject names the node the request went to, since a node may
// publish only under its own reply prefix.
type replies struct {
	once sync.Once
	err  error
	id   string
	sub  *nats.Subscription
	seq  atomic.Uint64

	mu      sync.Mutex
	waiting map[string]waiter
}

type waiter struct {
	node string
	ch   chan *nats.Msg
}

func (f *Fleet) replyMux() (*replies, error) {
	r := &f.replies
	r.once.Do(func() {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			r.err = err
			return
		}
		r.id = hex.EncodeToString(b[:])
		r.waiting = map[string]waiter{}
		r.sub, r.err = f.client.Conn().Subscribe(fleet.ReplyPrefix+".*."+r.id+".*", func(m *nats.Msg) {
			toks := strings.Split(m.Subject, ".")
			if len(toks) != 5 {
				return
			}
			r.mu.Lock()
			w, ok := r.waiting[toks[4]]
			if ok && w.node == toks[2] {
				delete(r.waiting, toks[4])
			}
			r.mu.Unlock()
			if ok && w.node == toks[2] {
				w.ch <- m
			}
		})
		if r.err == nil {
			// The subscription must reach the hub before a reply can.
			r.err = f.client.Conn().Flush()
		}
	})
	return r, r.err
}

// Request sends a router request to a node and waits for its reply.
func (f *Fleet) Request(ctx context.Context, node string, req RouteRequest) (RouteReply, error) {
	mux, err := f.replyMux()
	if err != nil {
		return RouteReply{}, fmt.Errorf("router replies: %w", err)
	}
	seq := strconv.FormatUint(mux.seq.Add(1), 10)
	ch := make(chan *nats.Msg, 1)
	mux.mu.Lock()
	mux.waiting[seq] = waiter{node: node, ch: ch}
	mux.mu.Unlock()
	defer func() {
		mux.mu.Lock()
		delete(mux.waiting, seq)
		mux.mu.Unlock()
	}()
	msg := nats.NewMsg(fleet.DownSubject(node, req.Namespace, req.Name))
	msg.Reply = fleet.NodeReplyPrefix(node) + "." + mux.id + "." + seq
	msg.Data = req.Body
	msg.Header.Set(fleet.HeaderMethod, req.Method)
	if req.Path != "" {
		msg.Header.Set(fleet.HeaderPath, req.Path)
	}
	if req.Query != "" {
		msg.Header.Set(fleet.HeaderQuery, req.Query)
	}
	if req.ContentType != "" {
		msg.Header.Set(fleet.HeaderContentType, req.ContentType)
	}
	if err := f.client.Conn().PublishMsg(msg); err != nil {
		return RouteReply{}, err
	}
	select {
	case <-ctx.Done():
		return RouteReply{}, ctx.Err()
	case m := <-ch:
		// The hub answers 503 itself when nobody subscribes: the node's
		// leaf is not connected.
		if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
			return RouteReply{}, ErrNodeOffline
		}
		st, _ := strconv.Atoi(m.Header.Get(fleet.HeaderStatus))
		if st == 0 {
			return RouteReply{}, fmt.Errorf("node %s sent a reply without %s", node, fleet.HeaderStatus)
		}
		return RouteReply{Status: st, Error: m.Header.Get(fleet.HeaderError),
			ContentType: m.Header.Get(fleet.HeaderContentType), Body: m.Data}, nil
	}
}

// MaxPayload is the hub's message limit.
func (f *Fleet) MaxPayload() int64 { return f.client.Conn().MaxPayload() }

// RuleMessages consumes what edges forward for eventbus->rest rules with
// the durable consumer RulesConsumer: a controller that was down (or a new
// leader) continues where the last one acknowledged.
func (f *Fleet) RuleMessages(ctx context.Context, workers int, handle func(context.Context, RuleMessage)) error {
	o := f.client.Options()
	cons, err := f.client.JetStream().CreateOrUpdateConsumer(ctx, o.UpStream, jetstream.ConsumerConfig{
		Durable:       RulesConsumer,
		Description:   "eddy-controller: eventbus->rest rule messages",
		FilterSubject: o.UpPrefix + ".*." + fleet.RulesSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       rulesAckWait,
		MaxAckPending: 4 * workers,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", RulesConsumer, o.UpStream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * workers))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	prefix := o.UpPrefix + "."
	work := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range work {
				node, _, _ := strings.Cut(strings.TrimPrefix(msg.Subject(), prefix), ".")
				var ids []string
				for _, id := range strings.Split(msg.Headers().Get(fleet.HeaderRules), ",") {
					if id = strings.TrimSpace(id); id != "" {
						ids = append(ids, id)
					}
				}
				handle(ctx, RuleMessage{Node: node, Rules: ids, Topic: msg.Headers().Get("Eddy-Topic"), Body: msg.Data()})
				if ctx.Err() != nil {
					continue // not acknowledged: delivered again to the next leader
				}
				_ = msg.Ack()
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		select {
		case work <- msg:
		case <-ctx.Done():
			return nil
		}
	}
}

var _ RuleBus = (*Fleet)(nil)
