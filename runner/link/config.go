package link

import (
	"log/slog"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline"
)

// Config configures the link. Only Hub and Node are required; the rest
// works at its zero value.
type Config struct {
	// Hub lists the hub's leaf-node URLs, e.g. tls://hub.example.com:7422
	// (nats-leaf:// for a hub without TLS, development only). Several URLs
	// of one cluster may be given; the leaf connects to one of them.
	Hub []string `json:"hub,omitempty"`
	// Node is this edge's name: its keys in the plans bucket, its status
	// record and its up subjects. A DNS label.
	Node string `json:"node,omitempty"`
	// Labels are announced in the node's status; `eddy fleet apply
	// --selector` and the controller's node selectors match them.
	Labels map[string]string `json:"labels,omitempty"`
	// User and Password authenticate the leaf connection (a hub user
	// whose permissions are fleet.NodePermissions). PasswordFile reads the
	// password from a file instead (trailing newline ignored).
	User         string `json:"user,omitempty"`
	Password     string `json:"password,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// CredentialsFile is a NATS .creds file (JWT and nkey seed) for hubs
	// that use decentralised JWT accounts, instead of User/Password.
	CredentialsFile string `json:"credentialsFile,omitempty"`
	// CAFile verifies the hub's TLS certificate (PEM). Without it the
	// system roots are used. Setting it implies TLS.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate for hubs that require
	// mutual TLS.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// LocalAddr is the loopback NATS listener for local apps. Default
	// 127.0.0.1:4222; "-" disables it (the runner still uses the leaf
	// in process).
	LocalAddr string `json:"localAddr,omitempty"`
	// ReconnectInterval is the wait between two attempts to reach the
	// hub. Default 500ms.
	ReconnectInterval pipeline.Duration `json:"reconnectInterval,omitempty"`
	// HeartbeatInterval is the most time between two status records.
	// Default 5s.
	HeartbeatInterval pipeline.Duration `json:"heartbeatInterval,omitempty"`
	// Fleet names the hub's buckets, stream and JetStream domain; they
	// must match the hub's. Default: fleet's default names, no domain.
	Fleet fleet.Options `json:"fleet,omitempty"`

	// DataDir keeps the applied set and the outbox cursor. Empty keeps
	// them in memory (a restarted edge waits for the hub). Set by the
	// runner to <data-dir>/link.
	DataDir string `json:"-"`
	// Version is announced in the node's status.
	Version string `json:"-"`
	// Logger receives the link's and the embedded server's logs.
	Logger *slog.Logger `json:"-"`
	// Clock is the time source. Default: the real clock.
	Clock clock.Clock `json:"-"`
}

// Enabled reports whether a hub is configured.
func (c *Config) Enabled() bool { return len(c.Hub) > 0 }

func (c *Config) defaults() {
	if c.LocalAddr == "" {
		c.LocalAddr = "127.0.0.1:4222"
	}
	if c.ReconnectInterval.Duration <= 0 {
		c.ReconnectInterval.Duration = 500 * time.Millisecond
	}
	if c.HeartbeatInterval.Duration <= 0 {
		c.HeartbeatInterval.Duration = fleet.DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
}
