// Package ratelog logs a warning at most once per interval per key, and
// says how many were suppressed in between (nats-server's
// rateLimitFormatWarnf, mosquitto's "Outgoing messages are being dropped"
// once per client). A client that misbehaves thousands of times a second
// costs one line per interval. It owns nothing but its table of keys.
package ratelog

import (
	"log/slog"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// Logger logs at most once per interval per key. Use New.
type Logger struct {
	log   *slog.Logger
	clk   clock.Clock
	every time.Duration

	mu   sync.Mutex
	keys map[string]*key
}

type key struct {
	last       time.Time
	suppressed int64
}

// MaxKeys bounds the keys remembered; older ones are forgotten first.
const MaxKeys = 4096

// New returns a Logger writing to log at most once per every per key,
// timed by clk (clock.Real{} when nil).
func New(log *slog.Logger, clk clock.Clock, every time.Duration) *Logger {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Logger{log: log, clk: clk, every: every, keys: map[string]*key{}}
}

// Warn logs msg with args unless key was logged less than the interval
// ago. A line after suppressed ones carries suppressed_since_last_warning.
func (r *Logger) Warn(k, msg string, args ...any) {
	now := r.clk.Now()
	r.mu.Lock()
	e := r.keys[k]
	if e == nil {
		if len(r.keys) >= MaxKeys {
			r.prune(now)
		}
		e = &key{}
		r.keys[k] = e
	} else if now.Sub(e.last) < r.every {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed_since_last_warning", suppressed)
	}
	r.log.Warn(msg, args...)
}

// prune forgets keys not logged for ten intervals, or all of them when
// that frees nothing. The caller holds r.mu.
func (r *Logger) prune(now time.Time) {
	for k, e := range r.keys {
		if now.Sub(e.last) > 10*r.every {
			delete(r.keys, k)
		}
	}
	if len(r.keys) >= MaxKeys {
		clear(r.keys)
	}
}
