package broker

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn records each Write it gets.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	closed bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func (c *countingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func TestCorkCoalescesWrites(t *testing.T) {
	under := &countingConn{}
	g := &guardedConn{Conn: under}
	if _, err := g.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	g.cork()
	for _, p := range []string{"b", "cc", "d"} {
		if n, err := g.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("corked write: %d, %v", n, err)
		}
	}
	if len(under.writes) != 1 {
		t.Fatalf("corked writes reached the connection: %q", under.writes)
	}
	g.uncork()
	if want := [][]byte{[]byte("a"), []byte("bccd")}; len(under.writes) != 2 || !bytes.Equal(under.writes[1], want[1]) {
		t.Fatalf("writes %q, want %q", under.writes, want)
	}
	// Past corkMax the buffer is written without waiting for uncork.
	g.cork()
	big := bytes.Repeat([]byte{'x'}, corkMax)
	if _, err := g.Write(big); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 3 {
		t.Fatalf("%d writes after a corkMax write, want 3", len(under.writes))
	}
	// Close sends what is held back (a DISCONNECT, say) first.
	if _, err := g.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !under.closed || string(under.writes[len(under.writes)-1]) != "bye" {
		t.Fatalf("close: closed %v, last write %q", under.closed, under.writes[len(under.writes)-1])
	}
}
