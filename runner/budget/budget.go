// Package budget turns one memory budget (eddy's --memory-limit) into the
// sizes of every buffer that holds data in memory — the WAL's segment
// buffers and tail cache, the commit queue, the broker's per-client write
// queues — and into the Go runtime's soft memory limit (GOMEMLIMIT).
//
// It only computes sizes. Setting the runtime limit is process-wide, so
// the command (cmd/eddy) does it with debug.SetMemoryLimit; libraries such
// as runner only size their buffers.
package budget

import (
	"fmt"
	"strconv"
	"strings"
)

// Default is the budget used when none is given: the buffers are sized for
// it, but no runtime limit is set.
const Default = 64 << 20

// Min is the smallest budget accepted: below it the runtime, the binary and
// the smallest buffers alone would exceed it.
const Min = 24 << 20

// Reserve is the part of a budget left for memory the Go runtime does not
// manage (see Sizes.GoLimit).
const Reserve = 16 << 20

// Sizes are the buffer sizes derived from a budget. Each is within the
// bounds its consumer supports; see For for the rules.
type Sizes struct {
	// Limit is the budget in bytes.
	Limit int64
	// GoLimit is the Go runtime's soft limit: Limit less Reserve (at least
	// half of Limit). The runtime counts only the memory it manages; the
	// reserve is for what it does not, mostly the binary's code mapped
	// from the file (13 MiB of eddy's 17 MiB idle RSS on amd64).
	GoLimit int64
	// WALSegmentSize is the WAL's segment size; a reader behind the tail
	// cache loads a whole older segment into memory, so it is also a
	// buffer (the segment being written is not held: runner/wal/internal/twal).
	WALSegmentSize int
	// WALSegmentCache is how many older segments the WAL keeps decoded
	// for readers behind the tail.
	WALSegmentCache int
	// WALCacheBytes and WALCacheRecords bound the tail cache that serves
	// pipelines which keep up.
	WALCacheBytes   int64
	WALCacheRecords int
	// WALAsyncQueue bounds the records queued for the group commit.
	WALAsyncQueue int
	// BrokerPendingWrites is each MQTT client's write-queue capacity.
	BrokerPendingWrites int
}

// For returns the sizes for a budget of limit bytes (0: Default). The rules,
// each clamped to what its consumer supports:
//
//	WAL tail cache     limit/32, 1–16 MiB (records: bytes/512)
//	WAL segment        limit/64, 1–8 MiB; 2 cached older segments
//
// (Older segments are loaded only for readers behind the tail cache; the
// segment being written is not held. With one cached segment, lagging
// readers in two different segments reloaded theirs from the file in
// turn, 1 MiB of garbage per 32 records read.)
//
//	commit queue       limit/4 KiB records, 4096–65536
//	broker write queue limit/16 KiB slots per client, 2048–8192
//
// so at the default 64 MiB: a 2 MiB cache, 1 MiB segments, 16384 queued
// records and 4096 slots per client; at 512 MiB and above, the sizes
// before budgets (16 MiB, 8 MiB, 65536, 8192).
func For(limit int64) (Sizes, error) {
	if limit == 0 {
		limit = Default
	}
	if limit < Min {
		return Sizes{}, fmt.Errorf("memory limit %s is below the minimum %s; give at least 24MiB", Format(limit), Format(Min))
	}
	s := Sizes{
		Limit:               limit,
		GoLimit:             max(limit-Reserve, limit/2),
		WALCacheBytes:       clamp(limit/32, 1<<20, 16<<20),
		WALSegmentSize:      int(clamp(limit/64, 1<<20, 8<<20)),
		WALSegmentCache:     2,
		WALAsyncQueue:       int(clamp(limit/4096, 4096, 65536)),
		BrokerPendingWrites: int(clamp(limit/(16<<10), 2048, 8192)),
	}
	s.WALCacheRecords = int(s.WALCacheBytes / 512)
	return s, nil
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// Parse reads a size such as 64MiB, 512M, 1GiB, 1.5G or 67108864 (bytes).
// K/M/G and KiB/MiB/GiB are both powers of 1024, as in GOMEMLIMIT and
// systemd's MemoryMax; a B suffix is allowed.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	n := 0
	for n < len(t) && (t[n] >= '0' && t[n] <= '9' || t[n] == '.') {
		n++
	}
	num := t[:n]
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
		"mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 {
		return 0, fmt.Errorf("%q is not a size; write e.g. 64MiB, 512M or 1GiB", s)
	}
	return int64(f * float64(mult)), nil
}

// Format prints a size in the largest binary unit that keeps it readable.
func Format(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + "MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', -1, 64) + "KiB"
	}
	return fmt.Sprintf("%dB", n)
}
