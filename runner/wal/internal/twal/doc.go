// Package twal is github.com/tidwall/wal v1.2.1 (MIT, see LICENSE) with
// one change for Eddy's memory budget: the log no longer keeps segment
// bytes in memory that Eddy's own tail cache already serves.
//
// Upstream keeps the whole tail segment's bytes in memory (the buffer grows
// by doubling as entries are appended, so each segment allocates about twice
// its size), and caches every finished segment with its bytes when the log
// cycles. Eddy's runner/wal reads records that keep up from its own tail
// cache, so those copies were the same records held two and three times:
// with 1 MiB segments up to 2 MiB for the tail buffer and 2 MiB per cached
// segment, a quarter of all bytes the filter benchmark allocated.
//
// Here the tail segment keeps only the positions of its entries; entries are
// framed into one reused write buffer and written, and a Read of the tail
// reads the entry back from the file (ReadAt; the page cache has it). A
// finished segment is not cached when the log cycles; reading it later loads
// it from its file into the LRU cache, as upstream does for every older
// segment. Truncations read the tail's bytes back from the file. The file
// format, the START/END truncation protocol and the API are upstream's, and
// so are the tests (wal_test.go, run in a temporary directory); eddy_test.go
// tests the change. Changed code is marked "eddy:".
package twal
