package wal

import (
	"context"
	"testing"
)

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Wait's channel is open exactly while Read(from) would block, and an
// append or Close closes it.
func TestWait(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, nil)
		ctx := context.Background()
		w := l.Wait(1)
		if isClosed(w) {
			t.Fatal("Wait(1) on an empty log is closed; Read would block")
		}
		if err := l.Append(ctx, &Record{Topic: "a", Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		if !isClosed(w) {
			t.Fatal("an append did not close the channel of Wait(1)")
		}
		if !isClosed(l.Wait(1)) {
			t.Fatal("Wait(1) with record 1 in the log is open")
		}
		if !isClosed(l.Wait(5)) {
			t.Fatal("Wait(5) beyond the end is open; Read returns an AheadError at once")
		}
		w2 := l.Wait(2)
		if isClosed(w2) {
			t.Fatal("Wait(2) at the end of the log is closed")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !isClosed(w2) || !isClosed(l.Wait(2)) {
			t.Fatal("Close did not release waiters")
		}
	})
}
