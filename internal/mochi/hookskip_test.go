package mqtt

// eddy: Options.InlineSkipsPublishHooks and Options.EncodeHookTypes.

import (
	"sync/atomic"
	"testing"

	"github.com/eddy-edge/eddy/internal/mochi/packets"
	"github.com/stretchr/testify/require"
)

type countingHook struct {
	HookBase
	publish, published, encoded atomic.Int64
}

func (h *countingHook) ID() string { return "counting" }

func (h *countingHook) Provides(b byte) bool {
	return b == OnPublish || b == OnPublished || b == OnPacketEncode
}

func (h *countingHook) OnPublish(_ *Client, pk packets.Packet) (packets.Packet, error) {
	h.publish.Add(1)
	return pk, nil
}

func (h *countingHook) OnPublished(*Client, packets.Packet) { h.published.Add(1) }

func (h *countingHook) OnPacketEncode(_ *Client, pk packets.Packet) packets.Packet {
	h.encoded.Add(1)
	return pk
}

func TestInlineSkipsPublishHooks(t *testing.T) {
	for _, skip := range []bool{false, true} {
		s := newServerWithInlineClient()
		s.Options.InlineSkipsPublishHooks = skip
		h := new(countingHook)
		require.NoError(t, s.AddHook(h, nil))
		require.NoError(t, s.Serve())
		got := 0
		require.NoError(t, s.Subscribe("a/#", 1, func(*Client, packets.Subscription, packets.Packet) { got++ }))
		require.NoError(t, s.Publish("a/b", []byte("x"), false, 0))
		require.Equal(t, 1, got, "delivered either way")
		want := int64(1)
		if skip {
			want = 0
		}
		require.Equal(t, want, h.publish.Load(), "OnPublish calls with skip=%v", skip)
		require.Equal(t, want, h.published.Load(), "OnPublished calls with skip=%v", skip)

		// A network client's publish still runs them.
		cl, _, _ := newQueueOnlyTestClient()
		require.NoError(t, s.processPacket(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("y")}))
		require.Equal(t, want+1, h.publish.Load())
		require.Equal(t, want+1, h.published.Load())
		require.NoError(t, s.Close())
	}
}

func TestEncodeHookTypes(t *testing.T) {
	for _, mask := range []uint16{0, 1 << packets.Connack} {
		cl, r, _ := newTestClient()
		h := new(countingHook)
		require.NoError(t, cl.ops.hooks.Add(h, nil))
		cl.ops.options.EncodeHookTypes = mask
		go func() { // drain what the client writes
			buf := make([]byte, 1024)
			for {
				if _, err := r.Read(buf); err != nil {
					return
				}
			}
		}()
		require.NoError(t, cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a", Payload: []byte("x")}))
		require.NoError(t, cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}))
		want := int64(2) // every packet
		if mask != 0 {
			want = 1 // the CONNACK only
		}
		require.Equal(t, want, h.encoded.Load(), "OnPacketEncode calls with mask %b", mask)
		_ = r.Close()
	}
}
