package mqtttest

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/hooks/auth"
	"github.com/eddy-edge/eddy/internal/mochi/listeners"
)

// recorder is a testing.TB whose Fatal and Skip end the calling goroutine
// and record the message instead of ending the real test, so that the
// helpers' failure paths can be checked. Everything else (Helper,
// Cleanup, Logf) goes to the real test.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped string
}

func (r *recorder) Fatal(args ...any) { r.end(&r.fatal, fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.end(&r.fatal, fmt.Sprintf(format, args...))
}
func (r *recorder) Skip(args ...any) { r.end(&r.skipped, fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any) {
	r.end(&r.skipped, fmt.Sprintf(format, args...))
}

func (r *recorder) end(into *string, msg string) {
	r.mu.Lock()
	*into = msg
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine (Goexit must not end
// the test's) and returns what f reported.
func run(t *testing.T, f func(tb testing.TB)) (fatal, skipped string) {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal, r.skipped
}

func TestTool(t *testing.T) {
	tests := []struct {
		name      string
		tool      string
		require   string // EDDY_REQUIRE_TOOLS
		ci        string
		wantPath  bool
		wantFatal string
		wantSkip  string
	}{
		{name: "installed", tool: "sh", wantPath: true},
		{name: "installed, required", tool: "sh", require: "1", wantPath: true},
		{name: "missing skips locally", tool: "eddy-no-such-tool",
			wantSkip: "eddy-no-such-tool not available (make deps installs it); set EDDY_REQUIRE_TOOLS=1 to make this a failure"},
		{name: "missing fails when required", tool: "eddy-no-such-tool", require: "1",
			wantFatal: "eddy-no-such-tool is required (EDDY_REQUIRE_TOOLS is set) but not available: make deps installs it"},
		{name: "missing fails in CI", tool: "eddy-no-such-tool", ci: "true", wantFatal: "eddy-no-such-tool is required"},
		{name: "EDDY_REQUIRE_TOOLS=0 skips", tool: "eddy-no-such-tool", require: "0",
			wantSkip: "eddy-no-such-tool not available (make deps installs it); set EDDY_REQUIRE_TOOLS=1 to make this a failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("EDDY_REQUIRE_TOOLS", tt.require)
			t.Setenv("CI", tt.ci)
			var path string
			fatal, skipped := run(t, func(tb testing.TB) { path = Tool(tb, tt.tool) })
			if tt.wantPath && !strings.HasSuffix(path, "/"+tt.tool) {
				t.Errorf("Tool(%q) = %q, want its path", tt.tool, path)
			}
			if !strings.Contains(fatal, tt.wantFatal) || (tt.wantFatal == "") != (fatal == "") {
				t.Errorf("fatal = %q, want %q", fatal, tt.wantFatal)
			}
			if skipped != tt.wantSkip {
				t.Errorf("skipped = %q, want %q", skipped, tt.wantSkip)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	tests := []struct {
		name      string
		cond      func(calls int) error
		wantCalls int
		wantFatal string
		timeout   time.Duration // default 30ms
	}{
		{name: "holds at once", cond: func(int) error { return nil }, wantCalls: 1, timeout: time.Minute},
		// A generous timeout: the case must pass on a loaded machine.
		{name: "holds after polling", cond: func(n int) error {
			if n < 4 {
				return errNotYet
			}
			return nil
		}, wantCalls: 4, timeout: time.Minute},
		{name: "never holds", cond: func(int) error { return errNotYet }, wantFatal: "timed out after 30ms waiting for the thing"},
		{name: "never holds, with a reason", cond: func(n int) error { return fmt.Errorf("%d missing", 10-min(n, 3)) },
			wantFatal: "timed out after 30ms waiting for the thing: 7 missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			fatal, _ := run(t, func(tb testing.TB) {
				timeout := cmp.Or(tt.timeout, 30*time.Millisecond)
				waitFor(tb, timeout, "the thing", func() error { calls++; return tt.cond(calls) })
			})
			if fatal != tt.wantFatal {
				t.Errorf("fatal = %q, want %q", fatal, tt.wantFatal)
			}
			if tt.wantCalls != 0 && calls != tt.wantCalls {
				t.Errorf("cond called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
	// The exported forms poll the same way.
	n := 0
	WaitFor(t, "three polls", func() bool { n++; return n == 3 })
	WaitForErr(t, "no error", func() error {
		if n++; n < 6 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 6 {
		t.Fatalf("polled %d times, want 6", n)
	}
}

// broker starts an in-process mochi broker on a random loopback port.
func broker(t *testing.T) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(tcp.Address())
	return srv, port
}

// subscribed reports whether the client id holds a subscription.
func subscribed(srv *mqtt.Server, id string) func() bool {
	return func() bool {
		cl, ok := srv.Clients.Get(id)
		return ok && cl.State.Subscriptions.Len() > 0
	}
}

func TestSubPub(t *testing.T) {
	RequireClients(t)
	srv, port := broker(t)
	tests := []struct {
		name string
		opts SubOptions
	}{
		{name: "ready by asking the broker", opts: SubOptions{Topics: []string{"a/#"}, ID: "sub-ready", QoS: 1}},
		{name: "ready by asking the broker, MQTT 5", opts: SubOptions{Topics: []string{"a/#"}, ID: "sub-v5", V5: true}},
		{name: "ready by probing", opts: SubOptions{Topics: []string{"a/#"}, ProbeTopic: "a/probe", QoS: 1}},
		{name: "ready by probing, probe on a second filter", opts: SubOptions{Topics: []string{"a/#", "p"}, ProbeTopic: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.ID != "" {
				tt.opts.Ready = subscribed(srv, tt.opts.ID)
			}
			s := StartSub(t, port, tt.opts)
			if tt.opts.ProbeTopic != "" {
				// A probe still in flight must not be counted.
				Pub(t, port, tt.opts.ProbeTopic, 0, probePayload)
			}
			Pub(t, port, "a/1", 1, `{"n":1}`, "two words")
			PubLines(t, port, "a/2", 1, "x", `{"n":3}`)
			if got, want := strings.Join(s.Lines(3), "\n"), "a/1 {\"n\":1}\na/1 two words\na/2 x"; got != want {
				t.Fatalf("Lines(3) =\n%s\nwant\n%s", got, want)
			}
			if got := s.Next(); got != `a/2 {"n":3}` {
				t.Fatalf("Next() = %q", got)
			}
			s.Close()
			s.Close()
			if s.cmd.ProcessState == nil {
				t.Fatal("mosquitto_sub still running after Close")
			}
		})
	}
}

func TestSubFailures(t *testing.T) {
	RequireClients(t)
	srv, port := broker(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, deadPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	if err := srv.Publish("r/kept", []byte("old"), true, 0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		port      string
		opts      SubOptions
		use       func(s *Sub)
		wantFatal string
	}{
		{name: "no topics", port: port, opts: SubOptions{ProbeTopic: "x"}, wantFatal: "SubOptions.Topics is empty"},
		{name: "no readiness", port: port, opts: SubOptions{Topics: []string{"x"}}, wantFatal: "set SubOptions.Ready or SubOptions.ProbeTopic"},
		{name: "no broker, probing", port: deadPort, opts: SubOptions{Topics: []string{"x"}, ProbeTopic: "x"},
			wantFatal: "exited before it subscribed"},
		{name: "no broker, asking", port: deadPort, opts: SubOptions{Topics: []string{"x"}, Ready: func() bool { return false }},
			wantFatal: "exited before it subscribed"},
		// The probe topic is outside the filter, so that the retained
		// message is certainly the first to arrive.
		{name: "a message before the probe", port: port, opts: SubOptions{Topics: []string{"r/#"}, ProbeTopic: "elsewhere"},
			wantFatal: `mosquitto_sub got "r/kept old" before its subscription was confirmed`},
		{name: "too few messages", port: port, opts: SubOptions{Topics: []string{"f/#"}, ID: "few", Timeout: 300 * time.Millisecond},
			use: func(s *Sub) {
				Pub(t, port, "f/1", 0, "only")
				s.Lines(2)
			},
			wantFatal: `timed out after 300ms with 1 of 2 messages on ["f/#"]: ["f/1 only"]`},
		{name: "mosquitto_sub dies", port: port, opts: SubOptions{Topics: []string{"k/#"}, ID: "killed"},
			use: func(s *Sub) {
				s.cmd.Process.Kill()
				s.Next()
			},
			wantFatal: `mosquitto_sub on ["k/#"] exited after 0 of 1 messages []: signal: killed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.ID != "" {
				tt.opts.Ready = subscribed(srv, tt.opts.ID)
			}
			fatal, _ := run(t, func(tb testing.TB) {
				s := StartSub(tb, tt.port, tt.opts)
				if tt.use != nil {
					tt.use(s)
				}
			})
			if !strings.Contains(fatal, tt.wantFatal) {
				t.Fatalf("fatal = %q, want it to contain %q", fatal, tt.wantFatal)
			}
		})
	}
}

func TestPubFails(t *testing.T) {
	Tool(t, "mosquitto_pub")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, deadPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	for name, pub := range map[string]func(testing.TB){
		"Pub":      func(tb testing.TB) { Pub(tb, deadPort, "t", 1, "m") },
		"PubLines": func(tb testing.TB) { PubLines(tb, deadPort, "t", 1, "m") },
	} {
		t.Run(name, func(t *testing.T) {
			fatal, _ := run(t, pub)
			if !strings.Contains(fatal, "mosquitto_pub") || !strings.Contains(fatal, "-p "+deadPort) {
				t.Fatalf("fatal = %q, want a mosquitto_pub failure naming the port", fatal)
			}
		})
	}
}

// TestOnlyTestsImportIt keeps the package doc's promise: no package of the
// module reaches mqtttest (directly or through others) unless it is
// itself test support, named like Go's own (net/http/httptest): its last
// path element ends in "test". Test support is only imported from tests
// (containerdtest and e2etest wait with WaitFor), so mqtttest never ships
// in a binary.
func TestOnlyTestsImportIt(t *testing.T) {
	const self = "github.com/eddy-edge/eddy/internal/mqtttest"
	// -e: another package's error must not hide the answer for the rest.
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/eddy-edge/eddy/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	listed, support := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		listed++
		if !slices.Contains(strings.Fields(deps), self) {
			continue
		}
		if _, name := path.Split(pkg); strings.HasSuffix(name, "test") {
			support++
			continue
		}
		t.Errorf("%s depends on %s outside its tests; it is test support only (import it from _test.go files)", pkg, self)
	}
	if listed < 10 || support == 0 {
		t.Fatalf("go list listed only %d packages, %d test-support packages using mqtttest:\n%s", listed, support, out)
	}
}

// TestAwaitCount: a count that keeps growing is waited for past
// WaitTimeout's worth of polls; one that stops is reported where it stalled.
func TestAwaitCount(t *testing.T) {
	n := 0
	if err := AwaitCount(50, func() int { n++; return n }); err != nil {
		t.Fatalf("a growing count: %v", err)
	}
	if err := AwaitCount(0, func() int { return 0 }); err != nil {
		t.Fatalf("already there: %v", err)
	}
}
