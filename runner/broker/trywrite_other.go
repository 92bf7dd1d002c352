//go:build !unix

package broker

import "syscall"

// tryWrite writes nothing where non-blocking socket writes are not
// available: the client's write loop writes batched deliveries.
func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }
