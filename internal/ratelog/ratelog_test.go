package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

func TestWarnOncePerIntervalPerKey(t *testing.T) {
	var buf bytes.Buffer
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), clk, 10*time.Second)
	for i := 0; i < 5; i++ {
		l.Warn("a", "dropped", "key", "a")
	}
	l.Warn("b", "dropped", "key", "b")
	if got := strings.Count(buf.String(), "msg=dropped"); got != 2 {
		t.Fatalf("%d lines, want one per key:\n%s", got, buf.String())
	}
	clk.Advance(10 * time.Second)
	l.Warn("a", "dropped", "key", "a")
	if !strings.Contains(buf.String(), "suppressed_since_last_warning=4") {
		t.Fatalf("the line after the interval does not count the 4 suppressed:\n%s", buf.String())
	}
}

func TestKeysStayBounded(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	l := New(slog.New(slog.DiscardHandler), clk, time.Second)
	for i := 0; i < 3*MaxKeys; i++ {
		l.Warn(strings.Repeat("k", i%50)+string(rune('a'+i%26))+time.Duration(i).String(), "x")
	}
	if n := len(l.keys); n > MaxKeys {
		t.Fatalf("%d keys remembered, want at most %d", n, MaxKeys)
	}
}
