package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestNewOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"nobody can connect", Options{}, "set AllowAnonymous, or AuthFile"},
		{"tls addr without tls", Options{AllowAnonymous: true, TLSAddr: ":0"}, "TLS is nil"},
		{"high water above limits", Options{AllowAnonymous: true, HighWater: 100, MaxPendingWrites: 50}, "HighWater 100 must be below"},
		{"bad auth file", Options{AuthFile: "/nonexistent/auth.yaml"}, "read auth file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true})
	b2, err := New(Options{AllowAnonymous: true, Addr: b.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "choose a free address") {
		t.Fatalf("err = %v", err)
	}
	if err := b.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	b3, _ := New(Options{AllowAnonymous: true})
	if err := b3.Publish("a", nil, 0, false); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("publish before start: %v", err)
	}
}

func TestPahoQoSRoundTrip(t *testing.T) { forEachAppender(t, testPahoQoSRoundTrip) }

func testPahoQoSRoundTrip(t *testing.T, app Appender, log *memLog) {
	b := startBroker(t, Options{AllowAnonymous: true, Log: app})
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			topic := fmt.Sprintf("rt/%d", qos)
			in := newInbox()
			sub := connect(t, brokerURL(b), nil)
			wait(t, sub.Subscribe(topic, qos, in.handler))
			pub := connect(t, brokerURL(b), nil)
			for i := range 10 {
				wait(t, pub.Publish(topic, qos, false, fmt.Sprint(i)))
			}
			got := in.waitN(t, 10, 10*time.Second)
			for i, m := range got {
				if string(m.Payload()) != fmt.Sprint(i) || m.Qos() != qos {
					t.Fatalf("message %d = %q qos %d", i, m.Payload(), m.Qos())
				}
			}
			msgs, durable := log.snapshot()
			n := 0
			for i, m := range msgs {
				if m.Topic == topic {
					n++
					if m.QoS != qos || durable[i] != (qos > 0) || m.Client == "" || m.Time.IsZero() {
						t.Fatalf("logged %+v durable=%v", m, durable[i])
					}
				}
			}
			if n != 10 {
				t.Fatalf("logged %d messages on %s, want 10", n, topic)
			}
		})
	}
}

func TestRetainedAndWildcards(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true})
	pub := connect(t, brokerURL(b), nil)
	topics := []string{"site/a/temp", "site/b/temp", "site/a/hum", "site/a/temp/raw", "other/x"}
	for _, tp := range topics {
		wait(t, pub.Publish(tp, 1, true, tp))
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"site/+/temp", []string{"site/a/temp", "site/b/temp"}},
		{"site/a/#", []string{"site/a/hum", "site/a/temp", "site/a/temp/raw"}},
		{"#", topics},
		{"site/+", nil},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			// mochi acknowledges a publish before it fans it out, so a live
			// message of the previous subtest may still reach this new
			// subscriber. Each subtest's live messages carry its own payload,
			// and only retained ones and those count.
			live := "live " + tc.filter
			in := newInbox()
			mine := func() (retained, ours []paho.Message) {
				for _, m := range in.all() {
					switch {
					case m.Retained():
						retained = append(retained, m)
					case string(m.Payload()) == live:
						ours = append(ours, m)
					}
				}
				return retained, ours
			}
			sub := connect(t, brokerURL(b), nil)
			wait(t, sub.Subscribe(tc.filter, 1, in.handler))
			eventually(t, 10*time.Second, fmt.Sprintf("%d retained messages", len(tc.want)), func() bool {
				r, _ := mine()
				return len(r) >= len(tc.want)
			})
			// A live (not retained) publish also matches.
			for _, tp := range topics {
				wait(t, pub.Publish(tp, 1, false, live))
			}
			eventually(t, 10*time.Second, fmt.Sprintf("%d live messages", len(tc.want)), func() bool {
				_, l := mine()
				return len(l) >= len(tc.want)
			})
			retained, ours := mine()
			var got, gotLive []string
			for _, m := range retained {
				got = append(got, m.Topic())
			}
			for _, m := range ours {
				gotLive = append(gotLive, m.Topic())
			}
			want := append([]string(nil), tc.want...)
			slices.Sort(want)
			slices.Sort(got)
			slices.Sort(gotLive)
			if !slices.Equal(got, want) {
				t.Fatalf("retained topics = %v, want %v", got, want)
			}
			if !slices.Equal(gotLive, want) {
				t.Fatalf("live topics = %v, want %v", gotLive, want)
			}
		})
	}
	var retained int
	for _, ti := range b.Topics() {
		if ti.Retained && !strings.HasPrefix(ti.Name, "$SYS/") {
			retained++
		}
	}
	if retained != len(topics) {
		t.Fatalf("Topics() shows %d retained, want %d", retained, len(topics))
	}
}

func TestPersistentSession(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true})
	in := newInbox()
	persistent := func(o *paho.ClientOptions) {
		o.SetClientID("persistent-1").SetCleanSession(false).SetDefaultPublishHandler(in.handler)
	}
	sub := connect(t, brokerURL(b), persistent)
	wait(t, sub.Subscribe("p/#", 1, in.handler))
	sub.Disconnect(100)
	eventually(t, 5*time.Second, "disconnect", func() bool { return b.Stats().Clients == 0 })

	pub := connect(t, brokerURL(b), nil)
	for i := range 5 {
		wait(t, pub.Publish(fmt.Sprintf("p/%d", i), 1, false, fmt.Sprint(i)))
	}
	// mochi acknowledges before it queues deliveries, so poll.
	eventually(t, 5*time.Second, "offline session to hold 5 messages", func() bool {
		ci := b.Clients()
		idx := slices.IndexFunc(ci, func(c ClientInfo) bool { return c.ID == "persistent-1" })
		return idx >= 0 && !ci[idx].Connected && ci[idx].Inflight == 5
	})
	connect(t, brokerURL(b), persistent)
	got := in.waitN(t, 5, 10*time.Second)
	var payloads []string
	for _, m := range got {
		payloads = append(payloads, string(m.Payload()))
	}
	slices.Sort(payloads)
	if !slices.Equal(payloads, []string{"0", "1", "2", "3", "4"}) {
		t.Fatalf("after reconnect got %v", payloads)
	}
}

// runMosquitto runs a mosquitto client and returns its combined output.
func runMosquitto(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mosquitto(t, name), args...).CombinedOutput()
	return string(out), err
}

// startMosquittoSub starts mosquitto_sub waiting for count messages and
// returns a function that waits for it and returns its output.
func startMosquittoSub(t *testing.T, b *Broker, filter string, count int, args ...string) func() string {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.Addr().String())
	id := fmt.Sprintf("msub-%d", time.Now().UnixNano())
	all := append([]string{"-h", host, "-p", port, "-i", id, "-t", filter, "-C", fmt.Sprint(count), "-W", "15", "-v"}, args...)
	cmd := exec.Command(mosquitto(t, "mosquitto_sub"), all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 10*time.Second, "mosquitto_sub to subscribe", func() bool {
		for _, c := range b.Clients() {
			if c.ID == id && c.Connected && len(c.Subscriptions) > 0 {
				return true
			}
		}
		return false
	})
	return func() string {
		err := cmd.Wait()
		if err != nil {
			t.Errorf("mosquitto_sub: %v: %s", err, out.String())
		}
		return out.String()
	}
}

func TestMosquittoClients(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true})
	host, port, _ := net.SplitHostPort(b.Addr().String())
	for _, version := range []string{"mqttv311", "mqttv5"} {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run(version+"/qos"+qos, func(t *testing.T) {
				topic := "mq/" + version + "/" + qos
				done := startMosquittoSub(t, b, "mq/"+version+"/+", 3, "-q", qos, "-V", version)
				for i := range 3 {
					out, err := runMosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-t", topic, "-q", qos, "-V", version, "-m", fmt.Sprint("m", i))
					if err != nil {
						t.Fatalf("mosquitto_pub: %v: %s", err, out)
					}
				}
				if got, want := done(), fmt.Sprintf("%[1]s m0\n%[1]s m1\n%[1]s m2\n", topic); got != want {
					t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
				}
			})
		}
	}
	t.Run("retained", func(t *testing.T) {
		out, err := runMosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-t", "mq/ret", "-r", "-q", "1", "-V", "mqttv5", "-m", "kept")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, err = runMosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "-t", "mq/#", "-C", "1", "-W", "10", "-v", "-V", "mqttv5")
		if err != nil || out != "mq/ret kept\n" {
			t.Fatalf("got %q, %v", out, err)
		}
	})
	t.Run("persistent v5", func(t *testing.T) {
		// Subscribe with a persistent session and leave.
		out, err := runMosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "-t", "ps/#", "-q", "1", "-c", "-i", "ps-1", "-E", "-V", "mqttv5")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, err = runMosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-t", "ps/x", "-q", "1", "-V", "mqttv5", "-m", "while-away")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, err = runMosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "-t", "ps/#", "-q", "1", "-c", "-i", "ps-1", "-C", "1", "-W", "10", "-v", "-V", "mqttv5")
		if err != nil || out != "ps/x while-away\n" {
			t.Fatalf("got %q, %v", out, err)
		}
	})
}

func TestAuthAndACL(t *testing.T) {
	authFile := writeAuthFile(t, `users:
  - username: dev
    password: `+testHash+`
    acl:
      publish: ["devices/%u/#", "clients/%c/out"]
      subscribe: ["commands/%u/+"]
  - username: admin
    password: `+testHash+`
`)
	b := startBroker(t, Options{AuthFile: authFile})
	host, port, _ := net.SplitHostPort(b.Addr().String())

	t.Run("connect", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			ok   bool
		}{
			{"good password", []string{"-u", "dev", "-P", "secret"}, true},
			{"bad password", []string{"-u", "dev", "-P", "wrong"}, false},
			{"unknown user", []string{"-u", "eve", "-P", "secret"}, false},
			{"anonymous", nil, false},
		}
		for _, tc := range tests {
			for _, v := range []string{"mqttv311", "mqttv5"} {
				t.Run(tc.name+"/"+v, func(t *testing.T) {
					args := append([]string{"-h", host, "-p", port, "-t", "devices/dev/x", "-m", "1", "-q", "1", "-V", v}, tc.args...)
					out, err := runMosquitto(t, "mosquitto_pub", args...)
					if (err == nil) != tc.ok {
						t.Fatalf("ok=%v, want %v: %s", err == nil, tc.ok, out)
					}
					if !tc.ok && !strings.Contains(strings.ToLower(out), "not authori") && !strings.Contains(strings.ToLower(out), "bad user") {
						t.Fatalf("unexpected refusal output %q", out)
					}
				})
			}
		}
	})
	if b.Stats().AuthFailures < 6 {
		t.Fatalf("AuthFailures = %d, want >= 6", b.Stats().AuthFailures)
	}

	t.Run("acl", func(t *testing.T) {
		admin := func(o *paho.ClientOptions) { o.SetUsername("admin").SetPassword("secret") }
		in := newInbox()
		spy := connect(t, brokerURL(b), admin)
		wait(t, spy.Subscribe("#", 1, in.handler))

		dev := connect(t, brokerURL(b), func(o *paho.ClientOptions) {
			o.SetUsername("dev").SetPassword("secret").SetClientID("cid-7")
		})
		// Allowed by %u and %c.
		wait(t, dev.Publish("devices/dev/temp", 1, false, "ok1"))
		wait(t, dev.Publish("clients/cid-7/out", 1, false, "ok2"))
		in.waitN(t, 2, 10*time.Second)
		// Denied QoS 0: silently dropped, connection kept.
		wait(t, dev.Publish("devices/other/temp", 0, false, "no"))
		// Subscribe: allowed filter and denied filter.
		tok := dev.SubscribeMultiple(map[string]byte{"commands/dev/+": 1, "commands/other/+": 1, "commands/dev/#": 1}, func(paho.Client, paho.Message) {})
		wait(t, tok)
		res := tok.(*paho.SubscribeToken).Result()
		if res["commands/dev/+"] != 1 || res["commands/other/+"] != 0x80 || res["commands/dev/#"] != 0x80 {
			t.Fatalf("suback codes = %v", res)
		}
		// Denied QoS 1 over MQTT 3.1.1: disconnected, never acknowledged.
		ptok := dev.Publish("devices/other/temp", 1, false, "no")
		ptok.WaitTimeout(5 * time.Second)
		eventually(t, 5*time.Second, "denied client disconnected", func() bool { return !dev.IsConnectionOpen() })
		wait(t, spy.Publish("sync", 1, false, "end"))
		for _, m := range in.waitN(t, 3, 10*time.Second) {
			if string(m.Payload()) == "no" {
				t.Fatalf("denied publish delivered on %s", m.Topic())
			}
		}
		st := b.Stats()
		if st.DeniedPublishes != 2 || st.DeniedSubscribes != 2 {
			t.Fatalf("denied pub/sub = %d/%d, want 2/2", st.DeniedPublishes, st.DeniedSubscribes)
		}
	})

	t.Run("acl v5", func(t *testing.T) {
		out, err := runMosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "dev", "-P", "secret", "-V", "mqttv5", "-q", "1", "-t", "devices/other/x", "-m", "no")
		if err == nil && !strings.Contains(strings.ToLower(out), "not authorized") {
			t.Fatalf("v5 denied publish not reported: %v %q", err, out)
		}
	})
}

func TestRefusedWhenLogFails(t *testing.T) { forEachAppender(t, testRefusedWhenLogFails) }

func testRefusedWhenLogFails(t *testing.T, app Appender, log *memLog) {
	b := startBroker(t, Options{AllowAnonymous: true, Log: app})
	host, port, _ := net.SplitHostPort(b.Addr().String())
	in := newInbox()
	spy := connect(t, brokerURL(b), nil)
	wait(t, spy.Subscribe("#", 2, in.handler))
	log.fail.Store(true)

	// MQTT 5: negative PUBACK / PUBREC.
	for _, qos := range []string{"1", "2"} {
		out, err := runMosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-q", qos, "-t", "fail/v5/"+qos, "-m", "no", "-d")
		if !strings.Contains(out, "Implementation specific error") && !strings.Contains(out, "rc131") && !strings.Contains(out, "reason code: 131") {
			t.Errorf("qos %s: refusal not reported (err %v): %s", qos, err, out)
		}
	}
	// MQTT 3.1.1: QoS 0 dropped, QoS 1 and 2 disconnected without an ack.
	pub := connect(t, brokerURL(b), nil)
	wait(t, pub.Publish("fail/v3/0", 0, false, "no"))
	for _, qos := range []byte{1, 2} {
		c := connect(t, brokerURL(b), nil)
		tok := c.Publish(fmt.Sprintf("fail/v3/%d", qos), qos, false, "no")
		eventually(t, 5*time.Second, "refused publisher disconnected", func() bool { return !c.IsConnectionOpen() })
		if tok.WaitTimeout(time.Second) && tok.Error() == nil {
			t.Errorf("qos %d publish acknowledged although the log failed", qos)
		}
	}
	// Inline publish reports the failure.
	bl := startBroker(t, Options{AllowAnonymous: true, Log: app, LogInline: true})
	if err := bl.Publish("fail/inline", []byte("no"), 1, false); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("inline publish err = %v", err)
	}

	log.fail.Store(false)
	wait(t, pub.Publish("fail/end", 1, false, "end"))
	got := in.waitN(t, 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Payload()) != "end" {
		for _, m := range got {
			t.Errorf("delivered %s %q although not logged", m.Topic(), m.Payload())
		}
	}
	if st := b.Stats(); st.LogFailures != 5 {
		t.Errorf("LogFailures = %d, want 5", st.LogFailures)
	}
	if msgs, _ := log.snapshot(); len(msgs) != 1 || msgs[0].Topic != "fail/end" {
		t.Errorf("log holds %v", msgs)
	}
}

func TestInlinePublishSubscribe(t *testing.T) {
	log := &memLog{}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log, LogInline: true})
	got := make(chan string, 10)
	unsub, err := b.Subscribe("twin/+/update", func(topic string, payload []byte) { got <- topic + "=" + string(payload) })
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, brokerURL(b), nil)
	wait(t, pub.Publish("twin/d1/update", 1, false, "a"))
	if g := <-got; g != "twin/d1/update=a" {
		t.Fatalf("inline subscriber got %q", g)
	}
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("out/#", 1, in.handler))
	if err := b.Publish("out/x", []byte("from-sink"), 1, false); err != nil {
		t.Fatal(err)
	}
	if m := in.waitN(t, 1, 10*time.Second); string(m[0].Payload()) != "from-sink" {
		t.Fatalf("got %q", m[0].Payload())
	}
	msgs, durable := log.snapshot()
	if len(msgs) != 2 || msgs[1].Client != "inline" || !durable[1] {
		t.Fatalf("log = %+v %v", msgs, durable)
	}
	unsub()
	wait(t, pub.Publish("twin/d1/update", 1, false, "b"))
	wait(t, pub.Publish("out/sync", 1, false, "s"))
	in.waitN(t, 2, 10*time.Second)
	select {
	case g := <-got:
		t.Fatalf("delivered after unsubscribe: %q", g)
	default:
	}
	for _, bad := range []string{"", "a/+", "a/#"} {
		if err := b.Publish(bad, nil, 0, false); err == nil {
			t.Errorf("Publish(%q) accepted", bad)
		}
	}
	if err := b.Publish("a", nil, 3, false); err == nil {
		t.Error("qos 3 accepted")
	}
	if _, err := b.Subscribe("a/#/b", func(string, []byte) {}); err == nil {
		t.Error("bad filter accepted")
	}
	if s := b.Stats(); s.InlineSubs != 0 || s.Logged != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestTLSAndWebSocket(t *testing.T) {
	cert := selfSigned(t)
	b := startBroker(t, Options{AllowAnonymous: true, TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	in := newInbox()
	sub := connect(t, "ssl://"+b.TLSAddr().String(), func(o *paho.ClientOptions) { o.SetTLSConfig(clientTLS) })
	wait(t, sub.Subscribe("sec/#", 1, in.handler))
	ws := connect(t, "wss://"+b.WSAddr().String()+"/mqtt", func(o *paho.ClientOptions) { o.SetTLSConfig(clientTLS) })
	wait(t, ws.Publish("sec/ws", 1, false, "over-websocket"))
	if m := in.waitN(t, 1, 10*time.Second); string(m[0].Payload()) != "over-websocket" {
		t.Fatalf("got %q", m[0].Payload())
	}
	listeners := map[string]bool{}
	for _, c := range b.Clients() {
		listeners[c.Listener] = true
	}
	if !listeners["tls"] || !listeners["ws"] {
		t.Fatalf("clients on listeners %v", listeners)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// LogInlineTopic narrows which of the runner's own publishes are logged.
func TestLogInlineTopic(t *testing.T) {
	log := &memLog{}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log, LogInline: true,
		LogInlineTopic: func(topic string) bool { return strings.HasPrefix(topic, "read/") }})
	for _, topic := range []string{"read/a", "unread/b", "read/c"} {
		if err := b.Publish(topic, []byte("x"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := log.snapshot()
	var got []string
	for _, m := range msgs {
		got = append(got, m.Topic)
	}
	if strings.Join(got, ",") != "read/a,read/c" {
		t.Fatalf("logged %v, want only the topics LogInlineTopic accepts", got)
	}
}
