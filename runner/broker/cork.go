package broker

import (
	"net"
	"sync"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
)

// corkMax is how many bytes a corked connection holds before it writes
// them anyway.
const corkMax = 64 << 10

// corkedWrites coalesces a connection's writes while it is corked, like
// TCP_CORK. mochi writes each packet with its own write system call; when
// a group commit makes a batch of one client's QoS 1/2 publishes durable,
// the ack dispatcher acknowledges them one by one, so the PUBACKs (and any
// deliveries to the same client) went out as one syscall each — a quarter
// to a third of eddy's CPU in the durable QoS 1 benchmark. Corked for the
// batch, they leave in one write when it is done.
type corkedWrites struct {
	mu     sync.Mutex // held across the underlying Write: one writer at a time
	corked bool
	buf    []byte
	err    error // a failed flush: later writes fail too
}

// Write writes p, or buffers it while the connection is corked.
func (c *guardedConn) Write(p []byte) (int, error) {
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if !w.corked {
		return c.Conn.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= corkMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// TryWrite writes what of p the socket takes now, without waiting
// (mqtt.TryWriter): a publisher flushing its batch's deliveries must not
// wait on a subscriber that does not read. It writes nothing while
// another write is under way or the connection is corked (the write loop
// is then asked to write the rest).
func (c *guardedConn) TryWrite(p []byte) (int, error) {
	w := &c.w
	if !w.mu.TryLock() {
		return 0, nil
	}
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.corked || c.raw == nil {
		return 0, nil
	}
	return tryWrite(c.raw, p)
}

// cork starts buffering writes until uncork.
func (c *guardedConn) cork() {
	c.w.mu.Lock()
	c.w.corked = true
	c.w.mu.Unlock()
}

// uncork writes what was buffered in one write and stops buffering. A
// failed write closes the connection: mochi took the buffered packets as
// sent, so the client must not be left waiting for them (an MQTT client
// resends unacknowledged publishes when it reconnects).
func (c *guardedConn) uncork() {
	c.w.mu.Lock()
	c.w.corked = false
	err := c.flushLocked()
	c.w.mu.Unlock()
	if err != nil {
		_ = c.Conn.Close()
	}
}

// Close sends what is held back (waiting at most a second for a client
// that does not read), then closes the connection: mochi writes a
// DISCONNECT before it closes, and that may land in a corked buffer.
func (c *guardedConn) Close() error {
	c.w.mu.Lock()
	if len(c.w.buf) > 0 && c.w.err == nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.flushLocked()
	}
	c.w.corked = false
	c.w.mu.Unlock()
	return c.Conn.Close()
}

func (c *guardedConn) flushLocked() error {
	w := &c.w
	if len(w.buf) == 0 || w.err != nil {
		return w.err
	}
	_, err := c.Conn.Write(w.buf)
	if cap(w.buf) > corkMax {
		w.buf = nil // a burst of large packets: do not keep the memory
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		w.err = err
	}
	return err
}

// corker returns cl's connection when its writes can be corked, or nil
// (an inline or orphan client, or a connection not accepted by Eddy's
// listeners).
func corker(cl *mqtt.Client) *guardedConn {
	if cl == nil || cl.Net.Conn == nil {
		return nil
	}
	g, _ := cl.Net.Conn.(*guardedConn)
	return g
}

var _ net.Conn = (*guardedConn)(nil)
