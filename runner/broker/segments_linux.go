package broker

import "syscall"

// maxSegment bounds the TCP segment size of client connections (the MSS
// the broker's listening sockets announce), for connections whose path
// allows more: loopback's is 64 KiB, Ethernet's 1448 bytes is unaffected.
//
// Why: Linux sends the head of its send queue only when at least one
// segment of it fits the peer's window, and a receiver that drained its
// buffer announces the larger window only once it has at least doubled.
// A local subscriber (a dashboard, a bridge, the benchmark's) with the
// default 128 KiB receive buffer advertises about 78 KiB; a burst of
// window results queued as one 64 KiB segment with, say, 40 KiB of
// window left waits for the zero-window probe: 200 ms or more, seen as
// late window results. With segments of at most 16 KiB a quarter of such
// a window always takes the next one.
const maxSegment = 16 << 10

// boundSegments is a net.ListenConfig.Control that sets maxSegment on the
// listening socket (accepted connections inherit it).
func boundSegments(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, maxSegment)
	}); err != nil {
		return err
	}
	return serr
}
