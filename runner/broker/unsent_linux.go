//go:build linux

package broker

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unsent returns how many bytes written to conn its peer has not yet
// acknowledged (the socket's SIOCOUTQ), or -1 when that is unknown (not
// a socket).
func unsent(conn net.Conn) int {
	// Unwrap TLS and the broker's own wrappers down to the socket.
	for i := 0; i < 8; i++ {
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = nc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	_ = raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n = v
		}
	})
	return n
}
