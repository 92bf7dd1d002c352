// Package mqtttest is the shared support for tests that talk to an MQTT
// broker with clients we did not write (Debian's mosquitto_pub and
// mosquitto_sub), and for tests that wait on something asynchronous.
//
// It owns: finding a command-line tool (skip locally, fail in CI), polling
// a condition with a deadline, and running mosquitto_sub / mosquitto_pub
// against a broker on 127.0.0.1 with readiness decided before the test
// publishes. It is imported only by _test.go files and by other test
// support packages (containerdtest, e2etest). It must not import
// any Eddy package (runner/twin's in-package tests use it, so any such
// import risks a cycle) nor any module outside the standard library;
// callers hand in broker-specific knowledge (for example "the broker
// lists this client's subscription") as a func.
package mqtttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/testtools"
)

// Deadlines shared by every helper. They bound how long a broken test
// hangs; they are never what a passing test waits for.
const (
	// WaitTimeout is how long WaitFor and WaitForErr poll.
	WaitTimeout = 15 * time.Second
	// ReceiveTimeout is the default time Sub.Next and Sub.Lines wait for
	// messages.
	ReceiveTimeout = 30 * time.Second
	// pollEvery is the polling interval of WaitFor.
	pollEvery = 5 * time.Millisecond
	// probeEvery is how often a probing Sub publishes a probe.
	probeEvery = 100 * time.Millisecond
	// probePayload is the payload of probe messages.
	probePayload = "probe"
)

// Tool returns the path of the command-line tool name. When it is not
// installed the test fails under EDDY_REQUIRE_TOOLS (make test, CI) and is
// skipped otherwise; see internal/testtools.
func Tool(t testing.TB, name string) string {
	t.Helper()
	return testtools.Tool(t, name, "make deps installs it")
}

// RequireClients is Tool for both mosquitto_sub and mosquitto_pub; call it
// first in a test that needs them, so that the test skips before it sets
// anything up.
func RequireClients(t testing.TB) {
	t.Helper()
	Tool(t, "mosquitto_sub")
	Tool(t, "mosquitto_pub")
}

// WaitFor polls cond every few milliseconds until it returns true, and
// fails the test if it has not after WaitTimeout. what names the awaited
// state in the failure ("timed out after 15s waiting for <what>"). cond
// runs on the test's goroutine, so it may call t.Fatal itself.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitFor(t, WaitTimeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// WaitForErr is WaitFor for a condition that can say why it does not hold
// yet: it polls cond until it returns nil, and on timeout fails with the
// last error cond returned.
func WaitForErr(t testing.TB, what string, cond func() error) {
	t.Helper()
	waitFor(t, WaitTimeout, what, cond)
}

var errNotYet = errors.New("condition not met")

// MaxProgressWait bounds WaitCount however steady the progress.
const MaxProgressWait = 5 * time.Minute

// WaitCount polls count until it returns want or more. It fails when
// count has not grown for WaitTimeout (a stall), not after a fixed time:
// moving thousands of messages through a broker, a pipeline and a client
// under the race detector on a loaded machine takes what it takes, and a
// fixed deadline made such tests fail while every message was still on
// its way. The failure says how far it got. MaxProgressWait bounds the
// whole wait.
func WaitCount(t testing.TB, what string, want int, count func() int) {
	t.Helper()
	if err := AwaitCount(want, count); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// AwaitCount is WaitCount for a caller that explains a failure itself:
// it returns nil once count reaches want, or an error saying where it
// stalled.
func AwaitCount(want int, count func() int) error {
	start := time.Now()
	last, lastAt := count(), start
	for last < want {
		time.Sleep(pollEvery)
		now := time.Now()
		if n := count(); n != last {
			last, lastAt = n, now
			continue
		}
		if now.Sub(lastAt) > WaitTimeout {
			return fmt.Errorf("stalled at %d of %d: no progress for %v", last, want, WaitTimeout)
		}
		if now.Sub(start) > MaxProgressWait {
			return fmt.Errorf("at %d of %d after %v", last, want, MaxProgressWait)
		}
	}
	return nil
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if errors.Is(err, errNotYet) {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
			}
			return
		}
		time.Sleep(pollEvery)
	}
}

// Pub publishes each of msgs to topic with QoS qos through the broker at
// 127.0.0.1:port, one mosquitto_pub process (one connection) per message,
// in order. It fails the test if mosquitto_pub fails.
func Pub(t testing.TB, port, topic string, qos int, msgs ...string) {
	t.Helper()
	bin := Tool(t, "mosquitto_pub")
	for _, m := range msgs {
		out, err := exec.Command(bin, pubArgs(port, topic, qos, "-m", m)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -p %s -t %s -m %q: %v\n%s", port, topic, m, err, out)
		}
	}
}

// PubLines publishes each of lines as one message to topic with QoS qos,
// all on one connection (mosquitto_pub -l reading them from stdin). Lines
// must not contain a newline.
func PubLines(t testing.TB, port, topic string, qos int, lines ...string) {
	t.Helper()
	bin := Tool(t, "mosquitto_pub")
	cmd := exec.Command(bin, pubArgs(port, topic, qos, "-l")...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -l -p %s -t %s (%d lines): %v\n%s", port, topic, len(lines), err, out)
	}
}

func pubArgs(port, topic string, qos int, extra ...string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", port, "-t", topic, "-q", fmt.Sprint(qos)}, extra...)
}

// SubOptions configures a mosquitto_sub started by StartSub. Topics, and
// either Ready or ProbeTopic, must be set; the rest works at its zero value.
type SubOptions struct {
	// Topics are the filters to subscribe to (one -t each); at least one.
	Topics []string
	// QoS is the subscription's QoS (-q); 0 by default.
	QoS int
	// V5 speaks MQTT 5 (-V mqttv5) instead of 3.1.1.
	V5 bool
	// ID is the client id (-i). Empty lets mosquitto_sub pick a random
	// one; set it when Ready looks the client up in the broker.
	ID string
	// Ready reports whether the broker holds the subscriptions, typically
	// by asking the broker (the runner's Broker().Clients() lists each
	// client's filters). StartSub polls it with WaitFor. When nil,
	// readiness is proven by probing (see ProbeTopic).
	Ready func() bool
	// ProbeTopic is used when Ready is nil: StartSub publishes the payload
	// "probe" to it (QoS 0, every 100ms) until one comes back through the
	// subscription. It must match one of Topics. Nothing else may arrive
	// on Topics before StartSub returns: any other message that arrives
	// while probing fails the test. Later lines on ProbeTopic (probes still
	// in flight) are never returned by Next or Lines.
	ProbeTopic string
	// Timeout bounds each Next and Lines call; ReceiveTimeout when zero.
	Timeout time.Duration
}

// Sub is a running `mosquitto_sub -v`: each message arrives as one line
// "topic payload". Close kills it; StartSub registers Close with
// t.Cleanup, so calling it is only needed to stop early.
type Sub struct {
	t       testing.TB
	port    string
	args    []string
	opts    SubOptions
	cmd     *exec.Cmd
	stderr  *testtools.Buffer
	lines   chan string   // stdout lines; closed at EOF
	stop    chan struct{} // closed by Close: the reader stops sending
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // cmd.Wait's result; read after exited is closed
	close   sync.Once
}

// StartSub starts mosquitto_sub -h 127.0.0.1 -p port -v -q QoS [-V mqttv5]
// [-i ID] -t Topics... and returns once the subscriptions are live (see
// SubOptions.Ready and ProbeTopic). It fails the test if mosquitto_sub
// cannot start, exits, or does not become ready within WaitTimeout.
func StartSub(t testing.TB, port string, opts SubOptions) *Sub {
	t.Helper()
	bin := Tool(t, "mosquitto_sub")
	if len(opts.Topics) == 0 {
		t.Fatal("mqtttest.StartSub: SubOptions.Topics is empty; give at least one topic filter")
	}
	if opts.Ready == nil && opts.ProbeTopic == "" {
		t.Fatal("mqtttest.StartSub: set SubOptions.Ready or SubOptions.ProbeTopic so that the subscription is confirmed before the test publishes")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = ReceiveTimeout
	}
	args := []string{"-h", "127.0.0.1", "-p", port, "-v", "-q", fmt.Sprint(opts.QoS)}
	if opts.V5 {
		args = append(args, "-V", "mqttv5")
	}
	if opts.ID != "" {
		args = append(args, "-i", opts.ID)
	}
	for _, tp := range opts.Topics {
		args = append(args, "-t", tp)
	}
	s := &Sub{t: t, port: port, args: args, opts: opts, cmd: exec.Command(bin, args...), stderr: &testtools.Buffer{},
		lines: make(chan string, 1024), stop: make(chan struct{}), exited: make(chan struct{})}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto_sub %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(s.Close)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			case <-s.stop:
				return
			}
		}
	}()
	go func() {
		// os/exec: Wait only after the reads from StdoutPipe are done.
		<-readDone
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if opts.Ready != nil {
		WaitFor(t, fmt.Sprintf("mosquitto_sub to subscribe to %q", opts.Topics), func() bool {
			select {
			case <-s.exited:
				t.Fatalf("mosquitto_sub %s exited before it subscribed: %s", strings.Join(args, " "), s.exitReason())
			default:
			}
			return opts.Ready()
		})
	} else {
		s.probe()
	}
	return s
}

// probe publishes probes until one comes back.
func (s *Sub) probe() {
	s.t.Helper()
	bin := Tool(s.t, "mosquitto_pub")
	args := pubArgs(s.port, s.opts.ProbeTopic, 0, "-m", probePayload)
	deadline := time.Now().Add(WaitTimeout)
	var pubErr string
	for {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			pubErr = fmt.Sprintf("; last mosquitto_pub error: %v: %s", err, bytes.TrimSpace(out))
		}
		tick := time.NewTimer(probeEvery)
		select {
		case l, ok := <-s.lines:
			tick.Stop()
			if !ok {
				<-s.exited
				s.t.Fatalf("mosquitto_sub %s exited before it subscribed: %s", strings.Join(s.args, " "), s.exitReason())
			}
			if s.isProbe(l) {
				return
			}
			s.t.Fatalf("mosquitto_sub got %q before its subscription was confirmed; start the subscriber before publishing", l)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mosquitto_sub on %q never received a probe on %s within %v%s", s.opts.Topics, s.opts.ProbeTopic, WaitTimeout, pubErr)
		}
	}
}

func (s *Sub) isProbe(line string) bool {
	return s.opts.Ready == nil && line == s.opts.ProbeTopic+" "+probePayload
}

// Next returns the next message as "topic payload". It fails the test if
// none arrives within the Timeout or mosquitto_sub exits.
func (s *Sub) Next() string {
	s.t.Helper()
	return s.Lines(1)[0]
}

// Lines returns the next n messages as "topic payload" lines, in the
// order mosquitto_sub printed them. It fails the test, showing what did
// arrive, if they do not all arrive within the Timeout or mosquitto_sub
// exits first.
func (s *Sub) Lines(n int) []string {
	s.t.Helper()
	timeout := time.NewTimer(s.opts.Timeout)
	defer timeout.Stop()
	got := make([]string, 0, n)
	for len(got) < n {
		select {
		case l, ok := <-s.lines:
			if !ok {
				<-s.exited
				s.t.Fatalf("mosquitto_sub on %q exited after %d of %d messages %q: %s", s.opts.Topics, len(got), n, got, s.exitReason())
			}
			if !s.isProbe(l) {
				got = append(got, l)
			}
		case <-timeout.C:
			s.t.Fatalf("timed out after %v with %d of %d messages on %q: %q", s.opts.Timeout, len(got), n, s.opts.Topics, got)
		}
	}
	return got
}

// Close kills mosquitto_sub and waits for it to exit. It may be called
// more than once.
func (s *Sub) Close() {
	s.close.Do(func() {
		close(s.stop)
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// exitReason describes how mosquitto_sub ended; call after exited closed.
func (s *Sub) exitReason() string {
	msg := fmt.Sprint(s.waitErr)
	if s.waitErr == nil {
		msg = "exit status 0"
	}
	if e := strings.TrimSpace(s.stderr.String()); e != "" {
		msg += ": " + e
	}
	return msg
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a program the test starts with an explicit listen address.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// WaitListening waits until something accepts TCP connections on
// 127.0.0.1:port (a broker the test started as a process).
func WaitListening(t testing.TB, port string) {
	t.Helper()
	WaitFor(t, "a listener on port "+port, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
