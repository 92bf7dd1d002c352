package runner_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/internal/tmpfstest"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/api"
)

// The disk-full scenario on a real 8 MiB filesystem: QoS 1
// publishes are refused once the WAL's disk is full, /readyz says not
// ready while they are, and when space is freed the runner takes
// publishes again by itself (no restart) and says ready. Every publish
// that was acknowledged is in the log.
func TestDiskFullRecoversWithoutRestart(t *testing.T) {
	fs := tmpfstest.Mount(t, "8m")

	r := runnertest.Start(t, runner.Config{DataDir: filepath.Join(fs, "data"), AllowAnonymous: true,
		Logger: slog.New(slog.DiscardHandler)})
	srv, err := api.New(api.Options{Backend: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	defer web.Close()
	ready := func() int {
		res, err := http.Get(web.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the disk is full", code)
	}

	// Take all but ~1 MiB of the filesystem.
	ballast := filepath.Join(fs, "ballast")
	tmpfstest.Fill(t, ballast, 1<<20)

	connect := func(id string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.Broker().Addr().String()).SetClientID(id).
			SetAutoReconnect(false).SetProtocolVersion(4))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	payload := strings.Repeat("x", 1000)
	dev := connect("device")
	acked := 0
	for i := 0; i < 5000; i++ {
		tok := dev.Publish("factory/d1/data", 1, false, fmt.Sprintf(`{"seq":%d,"pad":%q}`, i, payload))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !dev.IsConnected() {
			break // MQTT 3.1.1: refused by closing the connection, unacknowledged
		}
		acked++
	}
	dev.Disconnect(0)
	if acked == 5000 {
		t.Fatal("5000 publishes of 1 KB fitted in 1 MiB")
	}
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d while the log refuses appends, want 503", code)
	}
	logged := r.Log().Stats().Last
	t.Logf("disk full after %d acknowledged publishes (%d records in the log); /readyz 503", acked, logged)
	if logged < uint64(acked) {
		t.Fatalf("%d publishes acknowledged but only %d in the log", acked, logged)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "/readyz to say ready once space is back", func() bool { return ready() == http.StatusOK })
	dev = connect("device")
	defer dev.Disconnect(0)
	if tok := dev.Publish("factory/d1/data", 1, false, `{"seq":"after"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish after space came back: %v", tok.Error())
	}
	if st := r.Log().Stats(); st.Heals != 1 || st.Last <= logged {
		t.Fatalf("log after healing: %+v", st)
	}
}
