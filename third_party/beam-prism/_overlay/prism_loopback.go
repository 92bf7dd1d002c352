// Added to package github.com/eddy-edge/eddy/pipeline/beam by the same
// overlay that binds prism's job server to loopback (scripts/beam-overlay.sh
// maps pipeline/beam/prism_loopback_overlay.go, which is not on disk, to
// this file), so a binary can tell whether it was built with the patch:
// beam.PrismLoopback.

package beam

func init() { prismLoopback = true }
