package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DialOptions say how patiently Dial reaches the hub. The zero value
// tries for DefaultDialTimeout, each attempt for DefaultAttemptTimeout.
type DialOptions struct {
	// Timeout is how long Dial keeps trying: a refused connection (the
	// hub is not up yet) and an attempt that times out (a loaded hub or
	// network) are retried with backoff until it passes. Default
	// DefaultDialTimeout. The context given to Dial can end it sooner.
	Timeout time.Duration `json:"timeout,omitempty"`
	// AttemptTimeout bounds one attempt: TCP connect, TLS, the server's
	// INFO and its answer to CONNECT, which includes checking the
	// password against its bcrypt hash (about 100 ms of CPU on the hub,
	// seconds on a loaded machine). It also bounds the connection's
	// reconnect attempts later. Default DefaultAttemptTimeout (nats.go's
	// own default of 2 s failed under load).
	AttemptTimeout time.Duration `json:"attemptTimeout,omitempty"`
	// Logger says when an attempt failed and Dial tries again. Default:
	// nothing is logged.
	Logger *slog.Logger `json:"-"`
}

// Defaults of DialOptions.
const (
	DefaultDialTimeout    = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
)

// Dial connects to the hub at url (a comma-separated list of URLs, as
// nats.Connect takes) with opts, retrying with backoff (250 ms doubling
// to 2 s) until DialOptions.Timeout or ctx ends. Errors that no retry
// fixes are returned at once: a refused user or password, a TLS
// certificate that does not verify, a missing credentials file.
func Dial(ctx context.Context, url string, o DialOptions, opts ...nats.Option) (*nats.Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultDialTimeout
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		attemptTimeout := o.AttemptTimeout
		if dl, ok := ctx.Deadline(); ok {
			attemptTimeout = max(min(attemptTimeout, time.Until(dl)), 100*time.Millisecond)
		}
		nc, err := nats.Connect(url, append(opts, nats.Timeout(attemptTimeout))...)
		if err == nil {
			return nc, nil
		}
		if permanentDialError(err) {
			return nil, err
		}
		if o.Logger != nil {
			o.Logger.Info("the hub is not reachable yet; trying again", "url", url, "attempt", attempt, "err", err, "retryIn", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, o.Timeout)
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// permanentDialError reports whether retrying cannot help.
func permanentDialError(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var record tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired), errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.Is(err, nats.ErrNoUserCB), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &host), errors.As(err, &record), errors.As(err, &verify):
		return true
	}
	// Older servers and proxies send the text only.
	return strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}
