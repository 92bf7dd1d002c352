//go:build linux

package broker

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestUnsent: the bytes a peer has not acknowledged are seen through the
// broker's connection wrappers, and drop to zero once it has read them.
func TestUnsent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := &guardedConn{Conn: &wsConn{Conn: c}}
	if n := unsent(conn); n != 0 {
		t.Fatalf("unsent before writing = %d, want 0", n)
	}
	if _, err := c.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for unsent(conn) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("unsent = %d after the peer read everything, want 0", unsent(conn))
		}
		time.Sleep(time.Millisecond)
	}
	if n := unsent(struct{ net.Conn }{c}); n != -1 {
		t.Errorf("unsent of a conn that hides its socket = %d, want -1", n)
	}
}
