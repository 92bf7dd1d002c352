// Package hub runs an Eddy hub: an embedded nats-server with JetStream, a
// leaf-node listener for edges, per-node users confined to their own
// subjects (fleet.NodePermissions) and the fleet's buckets and stream set
// up. It is `eddy hub`, for development and small fleets. In production
// the hub is any NATS cluster with JetStream configured the same way
// (docs/fleet.md): nothing in Eddy depends on the hub being this package.
package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/eddy-edge/eddy/fleet"
)

// Config configures a Hub. The zero value runs on loopback with random
// ports, JetStream in memory and no authentication (tests only).
type Config struct {
	// ClientAddr is the listener for NATS clients (eddy fleet, the
	// controller, cloud consumers). Default 127.0.0.1:4222; ":0" or
	// "127.0.0.1:0" picks a free port (tests).
	ClientAddr string `json:"clientAddr,omitempty"`
	// LeafAddr is the listener for edge leaf nodes. Default 0.0.0.0:7422.
	LeafAddr string `json:"leafAddr,omitempty"`
	// DataDir holds JetStream's files. Empty uses a temporary directory
	// removed on Close: plans are lost when the hub stops (tests).
	DataDir string `json:"dataDir,omitempty"`
	// Fleet names the buckets and stream, and the JetStream domain.
	Fleet fleet.Options `json:"fleet,omitempty"`
	// Credentials are the users and nodes allowed in. Nil: no
	// authentication at all (development on loopback only).
	Credentials *Credentials `json:"-"`
	// TLSCertFile and TLSKeyFile enable TLS on both listeners.
	TLSCertFile string `json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty"`
	// TLSClientCAFile, when set, requires client certificates signed by
	// this CA (mutual TLS) on both listeners.
	TLSClientCAFile string `json:"tlsClientCAFile,omitempty"`
	// MaxConsumers is the most consumers the server allows per stream
	// when the stream sets no limit of its own; -1 or 0 is unlimited
	// (nats-server's own default is 1,000; the plans bucket's stream is
	// sized by fleet.Options.MaxPlanWatchers at Setup). Streams of
	// other applications on the hub follow this.
	MaxConsumers int `json:"maxConsumers,omitempty"`
	// RequestQueueLimit bounds the JetStream API requests waiting in the
	// server; when it is reached nats-server drops every waiting request.
	// After a hub restart every edge re-creates its plan watcher at once
	// (a consumer create each), so nats-server's default of 10,000 would
	// drop a whole reconnect storm of a 10,000-edge fleet. Default
	// 100,000 (about 50 MB of queued requests at most).
	RequestQueueLimit int64 `json:"requestQueueLimit,omitempty"`
	// Logger receives the server's log. Default: discard.
	Logger *slog.Logger `json:"-"`
}

// Hub is a running hub.
type Hub struct {
	cfg Config
	srv *server.Server
	tmp string // a data dir of our own, removed on Close
}

// New checks cfg and prepares the server; Start starts it.
func New(cfg Config) (*Hub, error) {
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:4222"
	}
	if cfg.LeafAddr == "" {
		cfg.LeafAddr = "0.0.0.0:7422"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Fleet.PlanShards <= 0 {
		// The hub states its count (the nodes' permissions depend on it);
		// Start refuses a count other than the one its store holds.
		cfg.Fleet.PlanShards = 1
	}
	var tmp string
	if cfg.DataDir == "" {
		// nats-server's default store dir is shared by every server on
		// the machine; a hub without a data dir gets its own, removed
		// on Close.
		var err error
		if tmp, err = os.MkdirTemp("", "eddy-hub-"); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		cfg.DataDir = tmp
	}
	opts, err := cfg.serverOptions()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("hub: %w", err)
	}
	srv.SetLoggerV2(&slogAdapter{l: cfg.Logger}, false, false, false)
	return &Hub{cfg: cfg, srv: srv, tmp: tmp}, nil
}

func hostPort(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("hub: %s %q: %w (want host:port)", what, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("hub: %s %q: bad port", what, addr)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

func (cfg *Config) serverOptions() (*server.Options, error) {
	host, port, err := hostPort("client address", cfg.ClientAddr)
	if err != nil {
		return nil, err
	}
	lhost, lport, err := hostPort("leaf address", cfg.LeafAddr)
	if err != nil {
		return nil, err
	}
	o := &server.Options{
		ServerName:            "eddy-hub",
		Host:                  host,
		Port:                  port,
		JetStream:             true,
		JetStreamDomain:       cfg.fleetDomain(),
		StoreDir:              cfg.DataDir,
		NoSigs:                true,
		MaxPayload:            2 * fleet.MaxValueSize,
		DisableShortFirstPing: true,
		// A fleet's limits, not nats-server's defaults (docs/fleet.md,
		// "Limits"): one plan watcher (consumer) per edge.
		JetStreamLimits:            server.JSLimitOpts{DefaultMaxConsumers: cfg.maxConsumers()},
		JetStreamRequestQueueLimit: cfg.requestQueueLimit(),
	}
	o.LeafNode.Host, o.LeafNode.Port = lhost, lport
	if cfg.Credentials != nil {
		users, err := cfg.Credentials.users(cfg.Fleet)
		if err != nil {
			return nil, err
		}
		o.Users = users
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return nil, err
		}
		o.TLSConfig, o.TLS, o.TLSTimeout = tc, true, 5
		o.TLSVerify = tc.ClientAuth == tls.RequireAndVerifyClientCert
		o.LeafNode.TLSConfig, o.LeafNode.TLSTimeout = tc.Clone(), 5
	}
	return o, nil
}

func (cfg *Config) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("hub: TLS certificate %q and key %q: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pool, err := LoadCAPool(cfg.TLSClientCAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// LoadCAPool reads a PEM file of CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Start starts the server, waits until it accepts connections and sets up
// the fleet's buckets and stream.
func (h *Hub) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			h.Close() // also removes a data dir of our own
		}
	}()
	go h.srv.Start()
	if !h.srv.ReadyForConnections(10 * time.Second) {
		return errors.New("hub: the NATS server did not become ready within 10s (see its log)")
	}
	nc, err := nats.Connect("", nats.InProcessServer(h.srv), nats.UserInfo(h.systemUser()))
	if err != nil {
		return fmt.Errorf("hub: connecting in process: %w", err)
	}
	defer nc.Close()
	c, err := fleet.NewClient(nc, h.cfg.Fleet)
	if err != nil {
		return err
	}
	return c.Setup(ctx)
}

// systemUser is the in-process admin user Start sets up the buckets with.
func (h *Hub) systemUser() (string, string) {
	if h.cfg.Credentials == nil {
		return "", ""
	}
	return h.cfg.Credentials.internalUser, h.cfg.Credentials.internalPassword
}

// Server returns the embedded nats-server.
func (h *Hub) Server() *server.Server { return h.srv }

// ClientURL returns the URL NATS clients connect to.
func (h *Hub) ClientURL() string { return h.srv.ClientURL() }

// LeafURL returns the URL edges use as their hub (nats-leaf:// or tls://
// with TLS).
func (h *Hub) LeafURL() string {
	v, err := h.srv.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	host := v.LeafNode.Host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "nats-leaf"
	if h.cfg.TLSCertFile != "" {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, strconv.Itoa(v.LeafNode.Port)))
}

// Close shuts the server down and waits for it.
func (h *Hub) Close() error {
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
	if h.tmp != "" {
		return os.RemoveAll(h.tmp)
	}
	return nil
}

// slogAdapter routes nats-server's log to slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }

// DefaultRequestQueueLimit is the default of Config.RequestQueueLimit.
const DefaultRequestQueueLimit = 100_000

func (cfg *Config) maxConsumers() int {
	if cfg.MaxConsumers <= 0 {
		return -1 // unlimited
	}
	return cfg.MaxConsumers
}

func (cfg *Config) requestQueueLimit() int64 {
	if cfg.RequestQueueLimit <= 0 {
		return DefaultRequestQueueLimit
	}
	return cfg.RequestQueueLimit
}

func (cfg *Config) fleetDomain() string {
	if cfg.Fleet.Domain == "" {
		return fleet.DefaultDomain
	}
	return cfg.Fleet.Domain
}

// Reload replaces the hub's users with creds without a restart: new and
// rotated passwords take effect for new connections, and connections of
// removed users (a revoked node's leaf connection) are closed at once.
func (h *Hub) Reload(creds *Credentials) error {
	if creds == nil || h.cfg.Credentials == nil {
		return errors.New("hub: reload needs credentials, and a hub started with them")
	}
	creds.internalUser, creds.internalPassword = h.cfg.Credentials.internalUser, h.cfg.Credentials.internalPassword
	cfg := h.cfg
	cfg.Credentials = creds
	opts, err := cfg.serverOptions()
	if err != nil {
		return err
	}
	// Keep the ports the server listens on (a 0 in the config picked one).
	v, err := h.srv.Varz(nil)
	if err != nil {
		return fmt.Errorf("hub: reload: %w", err)
	}
	opts.Port, opts.LeafNode.Port = v.Port, v.LeafNode.Port
	old := h.cfg.Credentials.hashes()
	if err := h.srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("hub: reloading the credentials: %w", err)
	}
	h.cfg.Credentials = creds
	// nats-server re-checks client connections on reload but not leaf
	// connections: close the leaf connections of removed or rotated
	// users; they reconnect with what they have and are checked then.
	now := creds.hashes()
	lz, err := h.srv.Leafz(nil)
	if err != nil {
		return fmt.Errorf("hub: listing leaf connections: %w", err)
	}
	for _, li := range lz.Leafs {
		c := h.srv.GetLeafNode(li.ID)
		if c == nil {
			continue
		}
		if user := c.GetOpts().Username; now[user] == "" || now[user] != old[user] {
			_ = h.srv.DisconnectClientByID(li.ID)
		}
	}
	return nil
}
