package link

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/eddy-edge/eddy/fleet"
)

// leafOptions builds the embedded server's options: no JetStream of its
// own, one remote (the hub), an optional loopback listener.
func (c *Config) leafOptions() (*server.Options, error) {
	if err := fleet.CheckName("link node", c.Node); err != nil {
		return nil, err
	}
	password := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("link: password file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	remote := &server.RemoteLeafOpts{Credentials: c.CredentialsFile}
	useTLS := c.CAFile != "" || c.CertFile != ""
	for _, raw := range c.Hub {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("link: hub URL %q: want e.g. tls://hub.example.com:7422", raw)
		}
		switch u.Scheme {
		case "tls":
			useTLS = true
		case "nats-leaf", "nats":
		default:
			return nil, fmt.Errorf("link: hub URL %q: scheme %q; use tls:// (or nats-leaf:// without TLS)", raw, u.Scheme)
		}
		if u.User == nil && c.User != "" {
			u.User = url.UserPassword(c.User, password)
		}
		remote.URLs = append(remote.URLs, u)
	}
	if useTLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("link: CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("link: CA file %s holds no PEM certificate", c.CAFile)
			}
		}
		if c.CertFile != "" || c.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("link: client certificate %q and key %q: %w", c.CertFile, c.KeyFile, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, tc, 5
	}
	o := &server.Options{
		ServerName:            "eddy-edge-" + c.Node,
		NoSigs:                true,
		DisableShortFirstPing: true,
		MaxPayload:            2 * fleet.MaxValueSize,
	}
	o.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
	o.LeafNode.ReconnectInterval = c.ReconnectInterval.Duration
	if c.LocalAddr == "-" {
		o.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(c.LocalAddr)
		if err != nil {
			return nil, fmt.Errorf("link: local NATS address %q: %w", c.LocalAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("link: local NATS address %q: bad port", c.LocalAddr)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("link: local NATS address %q is not a loopback address: local apps connect without credentials, so it must stay on 127.0.0.1 or ::1", c.LocalAddr)
		}
		o.Host, o.Port = host, p
	}
	return o, nil
}

// startLeaf starts the embedded server and an in-process client to it.
func startLeaf(c *Config) (*server.Server, *nats.Conn, error) {
	opts, err := c.leafOptions()
	if err != nil {
		return nil, nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("link: embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(&slogAdapter{l: c.Logger.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, nil, errors.New("link: the embedded NATS server did not start within 10s (is the local address in use? set link.localAddr)")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("eddy-link"),
		nats.CustomInboxPrefix(fleet.InboxPrefix(c.Node)), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.Logger.Warn("NATS error on the link", "err", err)
		}))
	if err != nil {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("link: connecting to the embedded NATS server: %w", err)
	}
	return srv, nc, nil
}

// slogAdapter routes nats-server's log to slog. The server's notices
// (leaf connected, reconnecting) are debug: the link logs state changes
// itself, once. Errors (a refused password, a bad certificate, the hub
// unreachable) are warnings at most every 30s, so a misconfigured edge
// says why it stays disconnected without flooding the log.
type slogAdapter struct {
	l *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  {}
func (a *slogAdapter) Errorf(f string, v ...any) {
	a.mu.Lock()
	warn := time.Since(a.lastWarn) >= 30*time.Second
	if warn {
		a.lastWarn = time.Now()
	}
	a.mu.Unlock()
	if warn {
		a.l.Warn(fmt.Sprintf(f, v...) + " (repeats are logged at debug for 30s)")
	} else {
		a.l.Debug(fmt.Sprintf(f, v...))
	}
}
