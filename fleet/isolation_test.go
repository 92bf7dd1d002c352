package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
)

// TestNodeIsolation connects as node edge-1 with the permissions `eddy hub`
// gives it and checks that it reaches its own keys and subjects and nothing
// of edge-2's.
func TestNodeIsolation(t *testing.T) {
	for _, tc := range []struct {
		domain string
		shards int
	}{{"", 0}, {"other", 0}, {"", 4}} {
		domain := tc.domain
		t.Run(fmt.Sprintf("domain=%s,shards=%d", domain, tc.shards), func(t *testing.T) {
			creds := &hub.Credentials{BcryptCost: bcrypt.MinCost}
			adminPW, _ := creds.Set("admin", false)
			edgePW, _ := creds.Set("edge-1", true)
			if _, err := creds.Set("edge-2", true); err != nil {
				t.Fatal(err)
			}
			opts := fleet.Options{Domain: domain, PlanShards: tc.shards}
			h := startHub(t, hub.Config{Credentials: creds, Fleet: opts})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			admin, _ := fleet.NewClient(connect(t, h.ClientURL(), nats.UserInfo("admin", adminPW)), opts)
			for _, n := range []string{"edge-1", "edge-2"} {
				if _, err := admin.Put(ctx, pipelineObject(t, "30").Envelope(n, "", time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			nc := connect(t, h.ClientURL(), nats.UserInfo("edge-1", edgePW),
				nats.CustomInboxPrefix(fleet.InboxPrefix("edge-1")), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			edge, _ := fleet.NewClient(nc, opts)

			// Own keys: readable.
			w, err := edge.WatchPlans(ctx, "edge-1")
			if err != nil {
				t.Fatalf("edge-1 watching its own plans: %v", err)
			}
			if ent := <-w.Updates(); ent == nil || ent.Key() != "edge-1.pipeline.default.overheat" {
				t.Fatalf("edge-1 watch: first entry %v", ent)
			}
			w.Stop()
			// Own status: writable.
			if err := edge.PutNodeStatus(ctx, &fleet.NodeStatus{Node: "edge-1"}); err != nil {
				t.Fatalf("edge-1 writing its status: %v", err)
			}
			// Own up subject: the stream stores it.
			js := edge.JetStream()
			if _, err := js.Publish(ctx, opts.UpSubject("edge-1", "alerts"), []byte("{}")); err != nil {
				t.Fatalf("edge-1 publishing under its own prefix: %v", err)
			}

			// edge-2's keys: refused.
			short, cancelShort := context.WithTimeout(ctx, time.Second)
			defer cancelShort()
			if w, err := edge.WatchPlans(short, "edge-2"); err == nil {
				select {
				case ent := <-w.Updates():
					if ent != nil {
						t.Fatalf("edge-1 read edge-2's key %s", ent.Key())
					}
				case <-short.Done():
				}
				w.Stop()
			}
			// (With shards, edge-2's keys are in another bucket, which
			// edge-1 may not even bind.)
			short2, c2 := context.WithTimeout(ctx, time.Second)
			defer c2()
			if kv, err := js.KeyValue(short2, fleet.PlansBucketFor(fleet.DefaultPlansBucket, "edge-2", tc.shards)); err == nil {
				if ent, err := kv.Get(short2, "edge-2.pipeline.default.overheat"); err == nil {
					t.Fatalf("edge-1 got edge-2's key: %s", ent.Value())
				}
			} else if tc.shards <= 1 {
				t.Fatalf("edge-1 binding the plans bucket: %v", err)
			}
			short3, c3 := context.WithTimeout(ctx, time.Second)
			defer c3()
			if err := edge.PutNodeStatus(short3, &fleet.NodeStatus{Node: "edge-2"}); err == nil {
				t.Fatal("edge-1 wrote edge-2's status")
			}
			short4, c4 := context.WithTimeout(ctx, time.Second)
			defer c4()
			if _, err := js.Publish(short4, opts.UpSubject("edge-2", "alerts"), []byte("{}")); err == nil {
				t.Fatal("edge-1 published under edge-2's prefix")
			}
			// Nothing of edge-1's reached edge-2's subjects.
			ajs := admin.JetStream()
			st, err := ajs.Stream(ctx, fleet.DefaultUpStream)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.GetLastMsgForSubject(ctx, opts.UpSubject("edge-2", "alerts")); !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Fatalf("edge-2's up subject holds a message: %v", err)
			}
			// Router traffic: edge-1 takes its own requests and answers
			// them, but sees none of edge-2's and cannot answer for it.
			anc := admin.Conn()
			own, err := nc.SubscribeSync(fleet.DownFilter("edge-1"))
			if err != nil {
				t.Fatal(err)
			}
			other, _ := nc.SubscribeSync(fleet.DownFilter("edge-2"))
			nc.Flush()
			replies, _ := anc.SubscribeSync(fleet.ReplyPrefix + ".>")
			anc.Flush()
			for _, n := range []string{"edge-1", "edge-2"} {
				m := nats.NewMsg(fleet.DownSubject(n, "default", "r"))
				m.Reply = fleet.NodeReplyPrefix(n) + ".x.1"
				if err := anc.PublishMsg(m); err != nil {
					t.Fatal(err)
				}
			}
			req, err := own.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("edge-1 did not get its router request: %v", err)
			}
			if err := req.Respond([]byte("ok")); err != nil {
				t.Fatal(err)
			}
			nc.Publish(fleet.NodeReplyPrefix("edge-2")+".x.1", []byte("forged"))
			nc.Flush()
			// The replies seen: edge-1's answer, and the hub's "no
			// responders" for edge-2's request (nobody may take it).
			got := map[string]string{}
			for {
				m, err := replies.NextMsg(500 * time.Millisecond)
				if errors.Is(err, nats.ErrNoResponders) {
					continue
				}
				if err != nil {
					break
				}
				got[m.Subject] = string(m.Data)
			}
			if len(got) != 1 || got[fleet.NodeReplyPrefix("edge-1")+".x.1"] != "ok" {
				t.Fatalf("replies %v; want only edge-1's answer (a forged answer for edge-2 must be refused)", got)
			}
			if m, err := other.NextMsg(100 * time.Millisecond); err == nil {
				t.Fatalf("edge-1 received edge-2's router request %s", m.Subject)
			}
			// And edge-1 cannot delete or change plans.
			short5, c5 := context.WithTimeout(ctx, time.Second)
			defer c5()
			kv, err := js.KeyValue(ctx, fleet.PlansBucketFor(fleet.DefaultPlansBucket, "edge-1", tc.shards))
			if err != nil {
				t.Fatalf("edge-1 binding its plans bucket: %v", err)
			}
			if _, err := kv.Put(short5, "edge-1.pipeline.default.overheat", []byte("x")); err == nil {
				t.Fatal("edge-1 overwrote its own plan")
			}
		})
	}
}
