//go:build unix

package broker

import (
	"errors"
	"syscall"
)

// tryWrite makes one non-blocking write(2) of p on the connection's socket
// (Go's sockets are non-blocking): it returns what the socket took, 0 when
// it is full.
func tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), p)
		return true // done either way: never wait for the socket
	}); err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	if errors.Is(werr, syscall.EAGAIN) || errors.Is(werr, syscall.EINTR) {
		return n, nil
	}
	return n, werr
}
