package beam

// PrismLoopback reports whether this binary was built with Eddy's patch
// that makes prism's job server listen on 127.0.0.1 only
// (third_party/beam-prism, applied with `go build -overlay` by `make
// build-beam`, `make test` and `make bench`; scripts/beam-overlay.sh writes
// the overlay). Built without it, Beam v2.77.0's prism job server, and the
// FnAPI endpoints multiplexed on it, listen on every interface without
// authentication for as long as the process runs: eddy-beam then refuses
// --runner prism.
func PrismLoopback() bool { return prismLoopback }

// prismLoopback is set by a file the overlay adds to this package
// (third_party/beam-prism/_overlay/prism_loopback.go), never on disk.
var prismLoopback bool
