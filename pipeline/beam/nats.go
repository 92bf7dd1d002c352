package beam

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/connectors/walexport"
)

// Headers the edge's outbox (runner/link) sets on every forwarded record.
const (
	headerTopic = "Eddy-Topic"
	headerTime  = "Eddy-Time"
)

// HubInput names a JetStream stream on the hub to read as input instead of
// exported files: `nats://host:4222/eddy_up?subject=eddy.up.edge-1.>&domain=hub`.
// The read is bounded: everything the stream holds when the job starts,
// in stream order (the stream sequence is the record's offset). With
// live=true the job follows the stream for ever (an unbounded source; see
// liveReadFn), from sequence from=N (default 1: everything it holds).
type HubInput struct {
	// URL is the NATS server (nats:// or tls://, credentials in the URL).
	URL string
	// Stream is the JetStream stream. Default eddy_up (fleet's up stream).
	Stream string
	// Subject filters the stream. Default: all of it.
	Subject string
	// Domain is the hub's JetStream domain. Default: none.
	Domain string
	// Live makes the input unbounded: the job follows the stream until it
	// is cancelled (query live=true).
	Live bool
	// From is the first stream sequence a live job reads (query from=N).
	// Default 1.
	From uint64
}

// ParseHubInput reads a nats:// or tls:// input URL; ok is false for any
// other input (a file glob).
func ParseHubInput(s string) (in HubInput, ok bool, err error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") {
		return HubInput{}, false, nil
	}
	q := u.Query()
	in = HubInput{Stream: "eddy_up", Subject: q.Get("subject"), Domain: q.Get("domain")}
	if p := u.Path; len(p) > 1 {
		in.Stream = p[1:]
	}
	if v := q.Get("live"); v != "" {
		if in.Live, err = strconv.ParseBool(v); err != nil {
			return in, true, fmt.Errorf("input %q: live=%q: want true or false", s, v)
		}
	}
	if v := q.Get("from"); v != "" {
		if in.From, err = strconv.ParseUint(v, 10, 64); err != nil || in.From == 0 {
			return in, true, fmt.Errorf("input %q: from=%q: want a stream sequence (1 or more)", s, v)
		}
		if !in.Live {
			return in, true, fmt.Errorf("input %q: from= applies to live inputs (add live=true)", s)
		}
	}
	for k := range q {
		switch k {
		case "subject", "domain", "live", "from":
		default:
			return in, true, fmt.Errorf("input %q: unknown parameter %q (known: subject, domain, live, from)", s, k)
		}
	}
	u.Path, u.RawQuery = "", ""
	in.URL = u.String()
	if u.Host == "" {
		return in, true, fmt.Errorf("input %q: no host; want nats://HOST:PORT/STREAM?subject=...", s)
	}
	return in, true, nil
}

// hubReadFn reads the stream once (from an impulse) and emits every
// message as an export line.
type hubReadFn struct {
	In HubInput
}

func (f *hubReadFn) ProcessElement(ctx context.Context, _ []byte, emit func(string)) error {
	nc, err := nats.Connect(f.In.URL, nats.Name("eddy-beam"))
	if err != nil {
		return fmt.Errorf("hub input: connecting to %s: %w", f.In.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if f.In.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, f.In.Domain)
	}
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, f.In.Stream)
	if err != nil {
		return fmt.Errorf("hub input: stream %q: %w", f.In.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if f.In.Subject != "" {
		cfg.FilterSubjects = []string{f.In.Subject}
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	var line []byte
	for {
		batch, err := cons.Fetch(512, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > last {
				return nil // stored after the job started
			}
			rec := walexport.Record{Offset: meta.Sequence.Stream, Time: meta.Timestamp, Topic: m.Subject(), Payload: m.Data()}
			if t := m.Headers().Get(headerTopic); t != "" {
				rec.Topic = t
			}
			if ns, err := strconv.ParseInt(m.Headers().Get(headerTime), 10, 64); err == nil {
				rec.Time = time.Unix(0, ns)
			}
			if line, err = walexport.Append(line[:0], rec); err != nil {
				return err
			}
			emit(string(line[:len(line)-1]))
			if meta.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if n == 0 {
			// Nothing more matches the filter up to last.
			return nil
		}
	}
}
