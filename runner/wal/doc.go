// Package wal is the edge runner's write-ahead log: the durability core that
// every message accepted by the embedded MQTT broker is appended to before it
// is acknowledged, and that pipelines read through cursors.
//
// The package owns the on-disk format (a CRC-32C checked binary framing of
// [Record] inside tidwall/wal segment files, through the fork in
// internal/twal that keeps no segment bytes in memory that the tail cache
// serves), crash recovery of the
// log tail, group commit (many appenders share one write and one fsync),
// blocking reads that wake on new appends, an in-memory tail cache, and
// retention (by age and size, bounded by registered consumers). It offers two
// implementations of [Log] with the same semantics: [Memory] (no files; for
// tests and `eddy run --data-dir=""`) and [File].
//
// It must not know about MQTT sessions, pipelines, operators or checkpoints:
// callers hand it records and offsets, nothing else. It never decodes
// payloads, never starts goroutines other than its own committer and
// retention loop, never reads the wall clock directly (the clock is injected)
// and never logs through the global logger.
//
// # Durability modes
//
// [Durable] (the default): Append returns after the records were written to
// the segment file AND fsynced. Acknowledged records survive a process crash,
// a kernel crash and a power loss (as far as the disk honours fsync).
//
// [Buffered]: Append returns after the records were written to the segment
// file (write(2) into the OS page cache) but before fsync. They survive a
// process crash (kill -9) but not a power loss or kernel crash until the next
// fsync, which happens with the next durable group commit or at the latest
// Options.SyncInterval later. The broker uses it for QoS 0.
//
// In both modes a caller whose records are queued waits for the commit; the
// context is only checked before queueing, so that a record is never half
// owned by a caller that gave up. Readers see a record as soon as it has been
// written (before fsync), so a consumer may process a buffered record that a
// power loss later removes; after recovery its Read then reports an
// [AheadError] so the cursor can be reset.
//
// # Completion callbacks
//
// AppendWith makes its caller wait for the commit, which limits one caller
// to one commit at a time. [Log].AppendNotify instead copies the records,
// queues them and returns; the committer calls the caller's done function
// once the records are as durable as the requested mode promises (after
// the fsync for Durable), or with the error that failed them. Callbacks run
// in offset order on the committer goroutine, so they must only hand the
// result off. A write or fsync failure fails every queued callback. Close
// commits everything queued, so every accepted callback runs before Close
// returns. The broker uses this to acknowledge MQTT QoS 1/2 publishes after
// the group commit without blocking the client's read loop.
//
// # Write failures
//
// A failed write or fsync (a full disk) fails the appends it carried and
// makes the log refuse appends at once; Stats.WriteError says why. The log
// heals itself: it probes the directory with backoff and, once a probe
// write succeeds, reopens the segment files (repairing the torn tail) and
// takes appends again. No restart is needed.
//
// # Corruption policy
//
// tidwall/wal stores entries as uvarint length + data with no checksum. Each
// entry here carries a CRC-32C over its content and its own offset. On Open,
// the tail segment is scanned: everything after the last entry that checks
// out (a torn write, a zero-filled tail, garbage) is truncated away and
// described in a [RecoveryReport], logged and available from [File.Recovery].
// Entries with a bad checksum that lie before the last good entry (a flipped
// bit on disk) are kept in the file but are never delivered: Read skips
// them, logs each one once with its offset and counts them in
// Stats.CorruptSkipped. A segment whose framing is unreadable is skipped as a
// whole, counted the same way.
package wal
