//go:build soak

package main

// The soak test (make soak): eddy run under steady durable QoS 1 load for
// EDDY_SOAK_DURATION (default 10m). It checks that every acknowledged
// message reaches the pipeline's output, that lag does not grow, and that
// memory stays flat (no leak per message or per checkpoint).

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/mqtttest"
)

func TestSoakDurableIngest(t *testing.T) {
	dur := 10 * time.Minute
	if s := os.Getenv("EDDY_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("EDDY_SOAK_DURATION: %v", err)
		}
		dur = d
	}
	dir := t.TempDir()
	spec, out := numberedToFile(t, dir, "soak", "soak/#")
	port := mqtttest.FreePort(t)
	p := startEddy(t, filepath.Join(dir, "data"), port, "--retention-max-age", "2m", spec)

	const pubs, rate = 4, 2000 // messages per second, all publishers
	var acked atomic.Int64
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < pubs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID(fmt.Sprint("soak-", i)))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("connect: %v", tok.Error())
				return
			}
			defer c.Disconnect(250)
			tick := time.NewTicker(time.Second * pubs / rate)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				n := next.Add(1) - 1
				tok := c.Publish("soak/x", 1, false, fmt.Sprintf(`{"n":%d}`, n))
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					acked.Add(1)
				}
			}
		}(i)
	}
	var rss []int64
	sample := time.NewTicker(10 * time.Second)
	deadline := time.After(dur)
loop:
	for {
		select {
		case <-sample.C:
			rss = append(rss, procRSS(p.Pid()))
		case <-deadline:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	sent := acked.Load()
	mqtttest.WaitForErr(t, "every acknowledged message in the output", func() error {
		if n := int64(len(readNumbers(t, out))); n < sent {
			return fmt.Errorf("%d of %d acknowledged messages in the output", n, sent)
		}
		return nil
	})
	p.Stop(syscall.SIGTERM)
	t.Logf("%v: %d messages acknowledged, RSS samples (kB): %v", dur, sent, rss)
	if len(rss) >= 12 {
		early, late := rss[5], rss[len(rss)-1] // after the first minute vs the end
		if late > early*3/2+8<<10 {
			t.Errorf("RSS grew from %d kB (1 min) to %d kB: a leak?", early, late)
		}
	}
}

func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}
