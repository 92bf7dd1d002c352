package beam

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/pipeline"
)

// DefaultCloudNode is the node name a Beam job publishes its cloud sinks
// under when the output URL names none.
const DefaultCloudNode = "beam"

// cloudAckTimeout bounds the wait for the hub's acknowledgement of a
// publish; a bundle whose publishes are not all acknowledged fails and the
// runner retries it (the stream's duplicate window drops the resends).
const cloudAckTimeout = 10 * time.Second

// CloudOutput is where `cloud:` sinks publish on Beam: the hub's up stream,
// as an edge's outbox does, under eddy.up.<node>.<subject>:
// `nats://host:4222?domain=hub&node=beam`.
type CloudOutput struct {
	// URL is the NATS server (nats:// or tls://, credentials in the URL).
	URL string
	// Domain is the hub's JetStream domain. Default: none.
	Domain string
	// Node is the node token of the subjects. Default DefaultCloudNode.
	Node string
	// Prefix is the up prefix. Default eddy.up.
	Prefix string
}

// ParseCloudOutput reads a --cloud URL.
func ParseCloudOutput(s string) (CloudOutput, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return CloudOutput{}, fmt.Errorf("cloud output %q: want nats://HOST:PORT?domain=hub&node=NAME", s)
	}
	q := u.Query()
	out := CloudOutput{Domain: q.Get("domain"), Node: q.Get("node"), Prefix: q.Get("prefix")}
	if out.Node == "" {
		out.Node = DefaultCloudNode
	}
	if out.Prefix == "" {
		out.Prefix = "eddy.up"
	}
	if strings.ContainsAny(out.Node, ".*> \t") || strings.ContainsAny(out.Prefix, "*> \t") {
		return CloudOutput{}, fmt.Errorf("cloud output %q: node and prefix must be subject tokens without wildcards or spaces", s)
	}
	u.RawQuery = ""
	out.URL = u.String()
	return out, nil
}

// subject is the NATS subject of a rendered cloud sink subject.
func (o CloudOutput) subject(rendered string) string {
	return o.Prefix + "." + o.Node + "." + sanitizeSubject(rendered)
}

// sampleSubject renders a subject template with every field as "x", to
// check it against a live input's filter.
func (o CloudOutput) sampleSubject(tmpl string) string {
	for {
		i := strings.Index(tmpl, "{{")
		j := strings.Index(tmpl, "}}")
		if i < 0 || j < i {
			break
		}
		tmpl = tmpl[:i] + "x" + tmpl[j+2:]
	}
	return o.subject(tmpl)
}

// subjectMatches reports whether a NATS filter (with * and >) matches subj.
func subjectMatches(filter, subj string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subj, ".")
	for i, t := range f {
		switch {
		case t == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case t != "*" && t != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}

// sanitizeSubject makes s a valid NATS subject, as the edge's outbox does:
// whitespace and wildcards become "_", and so do empty tokens.
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

// cloudSinkFn publishes each event to the hub's up stream with JetStream
// acknowledgements, with the headers an edge's outbox sets (Eddy-Topic:
// $eddy/up/<subject>; Eddy-Time: the event time) and a Nats-Msg-Id derived
// from the event (subject, offset, time, payload), so that a bundle the
// runner retries is stored once. The publishes of a bundle are
// asynchronous; FinishBundle waits for every acknowledgement and fails
// the bundle if one is missing.
type cloudSinkFn struct {
	Out     CloudOutput
	Subject string // the sink's subject template

	tmpl    *pipeline.Template
	nc      *nats.Conn
	js      jetstream.JetStream
	pending []jetstream.PubAckFuture
	buf     []byte
}

func (f *cloudSinkFn) Setup() error {
	var err error
	if f.tmpl, err = pipeline.ParseTemplate(f.Subject); err != nil {
		return fmt.Errorf("cloud sink subject: %w", err)
	}
	f.nc, err = nats.Connect(f.Out.URL, nats.Name("eddy-beam-cloud-sink"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("cloud sink: connecting to %s: %w", f.Out.URL, err)
	}
	opts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncTimeout(cloudAckTimeout)}
	if f.Out.Domain != "" {
		f.js, err = jetstream.NewWithDomain(f.nc, f.Out.Domain, opts...)
	} else {
		f.js, err = jetstream.New(f.nc, opts...)
	}
	return err
}

func (f *cloudSinkFn) StartBundle() { f.pending = f.pending[:0] }

func (f *cloudSinkFn) ProcessElement(ctx context.Context, r Rec) error {
	ev, err := toEvent(r)
	if err != nil {
		return err
	}
	f.buf = f.tmpl.Append(f.buf[:0], ev)
	subj := f.Out.subject(string(f.buf))
	msg := nats.NewMsg(subj)
	if msg.Data, err = r.JSON(); err != nil {
		encodeErrors.Inc(ctx, 1)
		return nil
	}
	msg.Header.Set(headerTopic, "$eddy/up/"+subj[len(f.Out.Prefix)+len(f.Out.Node)+2:])
	msg.Header.Set(headerTime, strconv.FormatInt(r.Time, 10))
	msg.Header.Set(nats.MsgIdHdr, cloudMsgID(subj, msg.Data, r))
	ack, err := f.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("cloud sink: publishing to %s: %w", subj, err)
	}
	f.pending = append(f.pending, ack)
	return nil
}

func (f *cloudSinkFn) FinishBundle(ctx context.Context) error {
	for _, a := range f.pending {
		select {
		case <-a.Ok():
		case err := <-a.Err():
			return fmt.Errorf("cloud sink: the hub did not store %s: %w", a.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.pending = f.pending[:0]
	return nil
}

func (f *cloudSinkFn) Teardown() {
	if f.nc != nil {
		f.nc.Close()
	}
}

// cloudMsgID is the Nats-Msg-Id of an event published by Beam: the same
// event (a retried bundle, a re-run job within the stream's duplicate
// window) gets the same id.
// data is the message's JSON (json.Marshal sorts the names, so the same
// fields always give the same bytes; Rec.Packed does not).
func cloudMsgID(subj string, data []byte, r Rec) string {
	h := fnv.New128a()
	var n [8]byte
	for _, s := range []string{subj, string(data)} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(r.Offset))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(r.Time))
	h.Write(n[:])
	return "beam-" + hex.EncodeToString(h.Sum(nil))
}

// cloudSink adds a cloud sink's publisher.
func cloudSink(s beam.Scope, sk *pipeline.CloudSink, col beam.PCollection, opts Options) error {
	if opts.Cloud == "" {
		return fmt.Errorf("cloud sink (subject %q) publishes to the hub: give it on the command line (--cloud nats://HOST:4222?domain=hub&node=NAME)", sk.Subject)
	}
	out, err := ParseCloudOutput(opts.Cloud)
	if err != nil {
		return err
	}
	beam.ParDo0(s, &cloudSinkFn{Out: out, Subject: sk.Subject}, col)
	return nil
}

// sinkPath is where a file sink writes: relative paths under
// Options.OutputDir.
func sinkPath(path string, opts Options) string {
	if opts.OutputDir != "" && !strings.HasPrefix(path, "/") {
		return strings.TrimSuffix(opts.OutputDir, "/") + "/" + path
	}
	return path
}

func init() {
	beam.RegisterType(reflect.TypeOf(cloudSinkFn{}))
	beam.RegisterType(reflect.TypeOf(CloudOutput{}))
}
