// Package exemem gives back the pages of the running executable that the
// process no longer uses: code and read-only data mapped from the binary's
// file that start-up (package initialisation, flag and YAML parsing,
// compiling pipelines) or a burst of traffic touched.
//
// Why: a Go binary's code, read-only data and function table are mapped
// from its file, and every page touched stays in the process's RSS. Linux
// maps 64 KiB around each page fault on a file mapping (fault-around), and
// Go runs every linked package's init at start-up, so a 46 MB eddy binary
// had 22–24 MiB of file-backed RSS while idle — four times its heap —
// although an idle runner runs a small part of that code.
//
// Release advises the kernel (madvise MADV_DONTNEED) that the executable's
// read-only file mappings are not needed. The pages stay in the page cache;
// the process's page tables forget them, and the next access maps them back
// with a minor fault (no disk read while the page cache keeps them, and a
// page the kernel evicted would have had to be read back anyway). Only
// mappings of the executable's own file, read-only and private, with no
// anonymous (copied-on-write) pages are advised: discarding those would lose
// data, e.g. relocated read-only data in a position-independent build.
//
// It is the caller's choice when: eddy releases after start-up and after a
// burst of traffic has ended (runner's memory trimmer), never in a loop.
package exemem

// Stats is what one Release did.
type Stats struct {
	// Mappings is how many mappings were advised.
	Mappings int
	// Bytes is their total size (virtual, not what was resident).
	Bytes int64
	// Resident is how much of them was resident before (RSS released).
	Resident int64
}
