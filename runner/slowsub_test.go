package runner_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner"
)

const forwardPipeline = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: forward, namespace: default}
spec:
  source:
    mqtt: {topic: "factory/+/data", format: json, qos: 1}
  steps:
    - filter: "seq >= 0"
  sinks:
    - mqtt: {topic: "out/{{device}}", qos: 1}
`

// stoppedSub is a mosquitto_sub (QoS 1, persistent session) that the test
// freezes with SIGSTOP: it reads nothing and acknowledges nothing, like a
// dashboard on a congested link, until SIGCONT.
type stoppedSub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines map[string]int // distinct "topic payload" lines -> times seen
	total int
}

func startStoppableSub(t *testing.T, r *runner.Runner, id string, topics ...string) *stoppedSub {
	t.Helper()
	bin := mqtttest.Tool(t, "mosquitto_sub")
	args := []string{"-h", "127.0.0.1", "-p", runnertest.BrokerPort(r), "-v", "-q", "1", "-c", "-i", id}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	s := &stoppedSub{cmd: exec.Command(bin, args...), lines: map[string]int{}}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines[sc.Text()]++
			s.total++
			s.mu.Unlock()
		}
	}()
	mqtttest.WaitFor(t, "mosquitto_sub "+id+" to subscribe", runnertest.Subscribed(r, id, topics...))
	return s
}

func (s *stoppedSub) counts() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines), s.total
}

// The reproduction: a QoS 1 subscriber that stops reading (here
// mosquitto_sub frozen with SIGSTOP) on the devices' topic and the
// pipeline's output topic. It used to freeze the pipeline (its MQTT sink
// waited on the subscriber) and make the broker refuse most device
// publishes ("quota exceeded" after 5 s each). Now it lags alone: every
// publish is acknowledged at full speed, the pipeline forwards everything
// to a subscriber that keeps up, and the frozen subscriber, once thawed,
// gets every message from the log.
func TestSlowSubscriberLagsAlone(t *testing.T) {
	const n = 6000
	r := runnertest.Start(t, runner.Config{DataDir: t.TempDir(), AllowAnonymous: true,
		CheckpointInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	plans, err := pipeline.Load("forward.yaml", []byte(forwardPipeline))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(context.Background(), plans[0], []byte(forwardPipeline)); err != nil {
		t.Fatal(err)
	}

	fast := startStoppableSub(t, r, "fast", "out/#")
	slow := startStoppableSub(t, r, "slow", "factory/+/data", "out/#")
	if err := slow.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	o := paho.NewClientOptions().AddBroker("tcp://" + r.Broker().Addr().String()).SetClientID("device").
		SetAutoReconnect(false).SetProtocolVersion(4).SetMaxResumePubInFlight(100)
	dev := paho.NewClient(o)
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer dev.Disconnect(50)
	start := time.Now()
	toks := make([]paho.Token, 0, n)
	for i := 0; i < n; i++ {
		dv := fmt.Sprintf("d%d", i%10)
		toks = append(toks, dev.Publish("factory/"+dv+"/data", 1, false, fmt.Sprintf(`{"device":%q,"seq":%d}`, dv, i)))
	}
	refused := 0
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			refused++
		}
	}
	elapsed := time.Since(start)
	st := r.Broker().Stats()
	t.Logf("%d QoS 1 publishes with a frozen QoS 1 subscriber: %d refused, %v (%.0f msg/s); broker: catch-ups %d, backpressure timeouts %d",
		n, refused, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), st.CatchUps, st.BackpressureTimeouts)
	if refused > 0 || !dev.IsConnected() {
		t.Fatalf("%d of %d publishes were refused (connected: %v): a frozen subscriber held up the publisher", refused, n, dev.IsConnected())
	}
	mqtttest.WaitCount(t, "the pipeline to forward every message to the subscriber that keeps up", n, func() int {
		d, _ := fast.counts()
		return d
	})
	if st := r.Broker().Stats(); st.CatchUps == 0 || st.Lagging != 1 {
		t.Fatalf("the frozen subscriber is not served from the log: %+v", st)
	}

	// Thawed, it gets all 2n messages (the devices' and the pipeline's).
	if err := slow.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.AwaitCount(2*n, func() int { d, _ := slow.counts(); return d }); err != nil {
		d, tot := slow.counts()
		slow.mu.Lock()
		var missing []string
		for i := 0; i < n && len(missing) < 10; i++ {
			dv := fmt.Sprintf("d%d", i%10)
			for _, tp := range []string{"factory/" + dv + "/data", "out/" + dv} {
				line := fmt.Sprintf(`%s {"device":%q,"seq":%d}`, tp, dv, i)
				if slow.lines[line] == 0 {
					missing = append(missing, line)
				}
			}
		}
		slow.mu.Unlock()
		t.Fatalf("%v: the thawed subscriber got %d of %d messages (%d with duplicates); missing e.g. %q; broker %+v; clients %+v",
			err, d, 2*n, tot, missing, r.Broker().Stats(), r.Broker().Clients())
	}
	d, total := slow.counts()
	mqtttest.WaitFor(t, "the thawed subscriber to be live again", func() bool { return r.Broker().Stats().Lagging == 0 })
	st = r.Broker().Stats()
	t.Logf("thawed subscriber: %d distinct messages, %d with duplicates; %d replayed from the log", d, total, st.Replayed)
	slow.mu.Lock()
	for line := range slow.lines {
		if !strings.HasPrefix(line, "factory/") && !strings.HasPrefix(line, "out/") {
			t.Errorf("unexpected line %q", line)
		}
	}
	slow.mu.Unlock()
}
