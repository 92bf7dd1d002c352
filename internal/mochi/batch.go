package mqtt

// eddy: this file is Eddy's (not upstream's): deliveries a publisher
// flushes once per batch (Server.PublishBatched).

import (
	"bytes"
	"sync/atomic"

	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// TryWriter is a connection that can write without waiting: TryWrite
// writes what the socket takes now, possibly nothing, and returns how many
// bytes that was; it never blocks. A client connection without it has its
// batched deliveries written by its write loop.
type TryWriter interface {
	TryWrite(p []byte) (int, error)
}

// maxBatched is how many bytes of batched deliveries a client's write
// buffer takes before further deliveries go through its queue again (and
// so under its bounds: a subscriber that does not read fills its queue,
// not this buffer).
const maxBatched = 64 << 10

// appendBatched encodes pk into the client's write buffer, to be written
// when the publisher's batch ends (FlushBatched), instead of queueing it
// for the write loop. It declines, and the caller queues pk as usual, when
// that could reorder the client's packets — some are queued, or the write
// loop holds the buffer (it may be blocked writing to a slow reader) — or
// the buffer already holds maxBatched bytes.
func (cl *Client) appendBatched(pk packets.Packet) bool {
	if atomic.LoadInt32(&cl.State.outboundQty) > 0 {
		return false
	}
	buf := getEncodeBuffer()
	defer putEncodeBuffer(buf)
	if err := cl.encode(&pk, buf); err != nil {
		// As the write loop does with a packet it cannot encode (one over
		// the client's maximum packet size): dropped [MQTT-3.1.2-24].
		cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
		return true
	}
	if !cl.TryLock() {
		return false
	}
	ob := cl.Net.outbuf
	// outboundQty is read again under the lock: the write loop counts a
	// packet down only after writing it, so zero here means none of this
	// client's packets is queued or being written.
	if atomic.LoadInt32(&cl.State.outboundQty) > 0 || ob != nil && ob.Len()+buf.Len() > maxBatched {
		cl.Unlock()
		return false
	}
	if ob == nil {
		ob = new(bytes.Buffer)
		cl.Net.outbuf = ob
	}
	ob.Write(buf.Bytes())
	cl.Unlock()
	cl.sent(pk, int64(buf.Len()), buf.Bytes())
	return true
}

// FlushBatched writes the deliveries appendBatched buffered, without
// waiting on the network: what the connection does not take now, and
// everything when the buffer is busy, is left to the write loop.
func (cl *Client) FlushBatched() {
	tw, ok := cl.Net.Conn.(TryWriter)
	if !ok || !cl.TryLock() {
		cl.kickWriter()
		return
	}
	ob := cl.Net.outbuf
	if ob == nil || ob.Len() == 0 {
		cl.Unlock()
		return
	}
	n, err := tw.TryWrite(ob.Bytes())
	ob.Next(n)
	rest := ob.Len()
	if rest == 0 {
		ob.Reset()
		if ob.Cap() > encodeBufferMax {
			cl.Net.outbuf = nil
		}
	}
	cl.Unlock()
	if err != nil {
		// A broken connection fails the client's read loop too, which
		// ends the client (as in the write loop).
		cl.ops.log.Debug("failed flushing batched packets", "error", err, "client", cl.ID)
		return
	}
	if rest > 0 {
		cl.kickWriter()
	}
}

// kickWriter asks the write loop to flush the write buffer.
func (cl *Client) kickWriter() {
	select {
	case cl.State.flushReq <- struct{}{}:
	default: // a request is pending already
	}
}
