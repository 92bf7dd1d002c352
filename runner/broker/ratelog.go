package broker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// rateLogger logs a warning at most once per interval per key, and says
// how many were suppressed in between (nats-server's rateLimitFormatWarnf,
// mosquitto's "Outgoing messages are being dropped" once per client). A
// client that misbehaves thousands of times a second costs one line per
// interval.
type rateLogger struct {
	log   *slog.Logger
	clk   clock.Clock
	every time.Duration

	mu   sync.Mutex
	keys map[string]*rateKey
}

type rateKey struct {
	last       time.Time
	suppressed int64
}

// maxRateKeys bounds the keys remembered; older ones are forgotten first.
const maxRateKeys = 4096

func newRateLogger(log *slog.Logger, clk clock.Clock, every time.Duration) *rateLogger {
	return &rateLogger{log: log, clk: clk, every: every, keys: map[string]*rateKey{}}
}

// Warn logs msg with args unless key was logged less than the interval ago.
func (r *rateLogger) Warn(key, msg string, args ...any) {
	now := r.clk.Now()
	r.mu.Lock()
	k := r.keys[key]
	if k == nil {
		if len(r.keys) >= maxRateKeys {
			r.prune(now)
		}
		k = &rateKey{}
		r.keys[key] = k
	} else if now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed_since_last_warning", suppressed)
	}
	r.log.Warn(msg, args...)
}

// prune forgets keys not logged for ten intervals, or all of them when
// that frees nothing. The caller holds r.mu.
func (r *rateLogger) prune(now time.Time) {
	for key, k := range r.keys {
		if now.Sub(k.last) > 10*r.every {
			delete(r.keys, key)
		}
	}
	if len(r.keys) >= maxRateKeys {
		clear(r.keys)
	}
}
