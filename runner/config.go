package runner

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/budget"
)

//go:generate go test -run TestConfigDocs -update

// Defaults of Config fields left empty.
const (
	DefaultMQTTAddr = "127.0.0.1:1883"
	DefaultHTTPAddr = "127.0.0.1:8080"
)

// anonymous decides whether the broker accepts clients without
// credentials: always with AllowAnonymous; otherwise only when there is no
// AuthFile and every MQTT listener is on a loopback address (a development
// machine). With another address and neither set it refuses to start and
// says what to set.
func (c *Config) anonymous() (bool, error) {
	if c.AllowAnonymous {
		return true, nil
	}
	if c.AuthFile != "" {
		return false, nil
	}
	for _, l := range []struct{ name, addr string }{{"mqttAddr (--mqtt-addr)", c.MQTTAddr},
		{"mqttWSAddr (--mqtt-ws-addr)", c.MQTTWSAddr}, {"mqttTLSAddr (--mqtt-tls-addr)", c.MQTTTLSAddr}} {
		if l.addr != "" && l.addr != "-" && !IsLoopback(l.addr) {
			return false, fmt.Errorf("the MQTT listener %s %s is not on a loopback address and there is no auth file: set authFile (--auth-file) with users, or allowAnonymous: true (--anonymous) to accept anyone", l.name, l.addr)
		}
	}
	return true, nil
}

// brokerOptions maps the config (after New's defaults) onto the broker's
// options: listeners, TLS, auth, queue sizes from the memory budget.
func (r *Runner) brokerOptions() (broker.Options, error) {
	anonymous, err := r.cfg.anonymous()
	if err != nil {
		return broker.Options{}, err
	}
	sizes, err := budget.For(int64(r.cfg.MemoryLimit))
	if err != nil {
		return broker.Options{}, err
	}
	var tlsCfg *tls.Config
	if r.cfg.MQTTTLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLSCertFile, r.cfg.TLSKeyFile)
		if err != nil {
			return broker.Options{}, fmt.Errorf("MQTT TLS listener: loading certificate %q and key %q (tlsCertFile, tlsKeyFile): %w", r.cfg.TLSCertFile, r.cfg.TLSKeyFile, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return broker.Options{
		MaxPendingWrites: sizes.BrokerPendingWrites,
		Addr:             r.cfg.MQTTAddr,
		WSAddr:           r.cfg.MQTTWSAddr,
		TLS:              tlsCfg,
		TLSAddr:          r.cfg.MQTTTLSAddr,
		AllowAnonymous:   anonymous,
		AuthFile:         r.cfg.AuthFile,
		Log:              walAppender{r.log},
		LogInline:        true,
		// Sink output is logged when a pipeline reads its topic, or when
		// it may have to be replayed to a slow QoS 1/2 subscriber (the
		// broker decides that per topic; see broker.Options).
		LogInlineTopic: func(topic string) bool { return r.engine != nil && r.engine.Reads(topic) },
		Logger:         r.logger.With("component", "broker"),
		Clock:          r.cfg.Clock,

		MaxPacketSize:     uint32(min(int64(r.cfg.MaxPacketSize), 268435460)),
		MaxTopicLength:    r.cfg.MaxTopicLength,
		MaxTopicLevels:    r.cfg.MaxTopicLevels,
		MaxSubscriptions:  r.cfg.MaxSubscriptions,
		ReceiveMaximum:    r.cfg.ReceiveMaximum,
		MaxQueuedMessages: r.cfg.MaxQueuedMessages,
	}, nil
}

// IsLoopback reports whether a host:port listen address is on a loopback
// interface only (localhost, 127.0.0.0/8, ::1).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
