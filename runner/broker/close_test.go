package broker

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session.
func connectPacket(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, byte(len(id) >> 8), byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestCloseWhileClientsConnect closes brokers while clients keep connecting.
// mochi's own Close listed a listener's clients with a read lock taken twice,
// so a client added in between deadlocked it; and a client whose handshake
// ended after its listener closed kept Close waiting for its goroutine.
func TestCloseWhileClientsConnect(t *testing.T) {
	for round := range 20 {
		b := startBroker(t, Options{AllowAnonymous: true})
		addr := b.Addr().String()
		var stop atomic.Bool
		var wg sync.WaitGroup
		var connected atomic.Int64
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100 && !stop.Load(); i++ {
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						return // the listener is closed
					}
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(connectPacket(fmt.Sprintf("c-%d-%d-%d", round, g, i))); err == nil {
						ack := make([]byte, 4)
						if _, err := c.Read(ack); err == nil {
							connected.Add(1)
						}
					}
					defer c.Close()
				}
				for !stop.Load() {
					time.Sleep(time.Millisecond)
				}
			}()
		}
		deadline := time.Now().Add(5 * time.Second)
		for connected.Load() < 20 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		closed := make(chan struct{})
		go func() {
			_ = b.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("round %d: Close did not return within 30 s while clients connected (%d connected):\n%s", round, connected.Load(), buf[:runtime.Stack(buf, true)])
		}
		stop.Store(true)
		wg.Wait()
	}
}

// TestSilentConnectionClosed: a connection that never sends CONNECT is
// closed after ConnectTimeout and counted; it no longer holds a goroutine for
// ever nor keeps Close waiting.
func TestSilentConnectionClosed(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true, ConnectTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from the broker before sending CONNECT", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the broker kept a silent connection open for 30 s (ConnectTimeout 200ms)")
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().ConnectTimeouts != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("ConnectTimeouts = %d, want 1", b.Stats().ConnectTimeouts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A client that connects properly is not affected by the deadline.
	cl := connect(t, brokerURL(b), nil)
	time.Sleep(400 * time.Millisecond)
	if !cl.IsConnectionOpen() {
		t.Fatal("a connected client was dropped after ConnectTimeout")
	}
}
