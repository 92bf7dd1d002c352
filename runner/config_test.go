package runner

import (
	"flag"
	"log/slog"
	"reflect"
	"testing"

	"github.com/eddy-edge/eddy/internal/configspec"
	"github.com/eddy-edge/eddy/runner/broker"
)

var update = flag.Bool("update", false, "rewrite generated files")

// TestConfigDocs regenerates config_docs.go from Config's doc comments and
// fails when the committed file differs, so flags, help and the reference
// always say what the comments say.
func TestConfigDocs(t *testing.T) {
	docs, err := configspec.ExtractDocs(".", "Config")
	if err != nil {
		t.Fatal(err)
	}
	// Sections: a struct field's settings are documented in its own
	// package. A new section fails below (no doc) until it is listed here.
	for _, sec := range []struct{ prefix, dir, typ string }{
		{"Link.", "link", "Config"},
		{"Link.Fleet.", "../fleet", "Options"},
		{"Actions.", "actions", "Config"},
	} {
		sub, err := configspec.ExtractDocs(sec.dir, sec.typ)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range sub {
			docs[sec.prefix+k] = v
		}
	}
	src, err := configspec.GoSource("runner", "ConfigDocs", "Config", docs)
	if err != nil {
		t.Fatal(err)
	}
	if err := configspec.CheckGenerated("config_docs.go", src, *update, "go generate ./runner"); err != nil {
		t.Fatal(err)
	}
	if _, err := configspec.Fields(reflect.TypeFor[Config](), docs); err != nil {
		t.Fatal(err)
	}
}

// A zero Config is accepted by the broker: anonymous clients on the
// default loopback address.
func TestZeroConfigBroker(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := r.brokerOptions()
	if err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if !opts.AllowAnonymous || opts.Addr != DefaultMQTTAddr {
		t.Errorf("zero Config gives broker options anonymous=%v addr=%q; want true, %q", opts.AllowAnonymous, opts.Addr, DefaultMQTTAddr)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatalf("the broker refuses a zero runner.Config: %v", err)
	}
	b.Close()
}

func TestAnonymousPolicy(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    bool
		wantErr bool
	}{
		{"loopback, no users", Config{MQTTAddr: "127.0.0.1:1883"}, true, false},
		{"localhost and ::1", Config{MQTTAddr: "localhost:1883", MQTTWSAddr: "[::1]:8083"}, true, false},
		{"loopback with users", Config{MQTTAddr: "127.0.0.1:1883", AuthFile: "users.yaml"}, false, false},
		{"all interfaces, no users", Config{MQTTAddr: "0.0.0.0:1883"}, false, true},
		{"a public websocket, no users", Config{MQTTAddr: "127.0.0.1:1883", MQTTWSAddr: ":8083"}, false, true},
		{"a public TLS listener, no users", Config{MQTTAddr: "127.0.0.1:1883", MQTTTLSAddr: "10.0.0.1:8883"}, false, true},
		{"TCP disabled", Config{MQTTAddr: "-", MQTTWSAddr: "127.0.0.1:8083"}, true, false},
		{"allowed anywhere", Config{MQTTAddr: "0.0.0.0:1883", AllowAnonymous: true}, true, false},
		{"allowed with users", Config{MQTTAddr: "0.0.0.0:1883", AllowAnonymous: true, AuthFile: "u.yaml"}, true, false},
		{"public with users", Config{MQTTAddr: "0.0.0.0:1883", AuthFile: "u.yaml"}, false, false},
	}
	for _, tt := range tests {
		got, err := tt.cfg.anonymous()
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestBrokerBoundsReachTheBroker: the client bounds set in the one
// configuration are the broker's, and zero keeps the broker's defaults.
func TestBrokerBoundsReachTheBroker(t *testing.T) {
	r := &Runner{cfg: Config{MQTTAddr: "127.0.0.1:0", MaxPacketSize: 4096, MaxTopicLength: 100, MaxTopicLevels: 5,
		MaxSubscriptions: 7, ReceiveMaximum: 9, MaxQueuedMessages: 11}, logger: slog.New(slog.DiscardHandler)}
	o, err := r.brokerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxPacketSize != 4096 || o.MaxTopicLength != 100 || o.MaxTopicLevels != 5 || o.MaxSubscriptions != 7 ||
		o.ReceiveMaximum != 9 || o.MaxQueuedMessages != 11 {
		t.Fatalf("broker options %+v do not carry the configured bounds", o)
	}
	r.cfg = Config{MQTTAddr: "127.0.0.1:0"}
	if o, err = r.brokerOptions(); err != nil || o.MaxPacketSize != 0 || o.MaxQueuedMessages != 0 {
		t.Fatalf("zero bounds: %+v, %v (want the broker's defaults, 0 here)", o, err)
	}
}
