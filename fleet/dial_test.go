package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
)

// flakyProxy listens on a random port and closes the first `drop`
// connections at once (a hub that is restarting or overloaded), then
// forwards to the hub at to. A drop of -1 holds every connection open
// without a byte (a hub that never answers).
func flakyProxy(t *testing.T, to string, drop int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			if drop < 0 {
				continue
			}
			if n < drop {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			held = append(held, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestDialRetries: Dial reaches a hub whose first two connections are
// dropped, gives up on one that never answers after its Timeout, and
// does not retry a refused password.
func TestDialRetries(t *testing.T) {
	creds := &hub.Credentials{BcryptCost: bcrypt.MinCost}
	pw, _ := creds.Set("admin", false)
	h := startHub(t, hub.Config{Credentials: creds})
	hubAddr := strings.TrimPrefix(h.ClientURL(), "nats://")
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	attempts := func() int {
		logMu.Lock()
		defer logMu.Unlock()
		n := strings.Count(logs.String(), "trying again")
		logs.Reset()
		return n
	}

	nc, err := fleet.Dial(context.Background(), "nats://"+flakyProxy(t, hubAddr, 2), fleet.DialOptions{Logger: log}, nats.UserInfo("admin", pw))
	if err != nil {
		t.Fatalf("through a hub that drops the first 2 connections: %v", err)
	}
	nc.Close()
	if n := attempts(); n != 2 {
		t.Errorf("%d retries logged, want 2", n)
	}

	_, err = fleet.Dial(context.Background(), "nats://"+flakyProxy(t, hubAddr, -1),
		fleet.DialOptions{Timeout: time.Second, AttemptTimeout: 200 * time.Millisecond, Logger: log}, nats.UserInfo("admin", pw))
	if err == nil || !strings.Contains(err.Error(), "gave up after") {
		t.Errorf("a hub that never answers: %v, want a timeout that says it gave up", err)
	}
	if n := attempts(); n < 2 {
		t.Errorf("a hub that never answers: %d retries, want several", n)
	}

	_, err = fleet.Dial(context.Background(), h.ClientURL(), fleet.DialOptions{Logger: log}, nats.UserInfo("admin", "wrong"))
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("a wrong password: %v, want nats.ErrAuthorization", err)
	}
	if n := attempts(); n != 0 {
		t.Errorf("a wrong password was retried %d times", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
