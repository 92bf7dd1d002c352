package broker

import (
	"net"
	"syscall"
	"testing"
)

// A client connection carries segments of at most maxSegment bytes, even
// over loopback (64 KiB otherwise): see maxSegment for the stall this
// prevents.
func TestClientSegmentsBounded(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true})
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		mss, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if mss <= 0 || mss > maxSegment {
		t.Fatalf("segment size of a loopback client connection: %d bytes, want at most %d", mss, maxSegment)
	}
	t.Logf("segment size %d", mss)
}
