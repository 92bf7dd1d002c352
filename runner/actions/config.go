package actions

import (
	"path"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// Config is the edge's action policy and runtime settings: what pipelines
// (local or shipped from the cloud) may make this node do. Its zero value
// refuses every action: an image must be allowed explicitly.
type Config struct {
	// Runtime is the CRI endpoint of the node's container runtime.
	// Default unix:///run/containerd/containerd.sock.
	Runtime string `json:"runtime,omitempty"`
	// AllowedImages are the images a run action may start: exact
	// references or path.Match patterns (localhost/eddy/*; a pattern
	// without a tag matches every tag; "*" alone allows every image).
	// Empty refuses every run.
	AllowedImages []string `json:"allowedImages,omitempty"`
	// ForeignTargets are the containers that Eddy did not start which stop
	// and restart actions may touch, as namespace/pod/container patterns
	// (path.Match, e.g. "factory/motor-*/*"). Empty: stop and restart act
	// only on containers Eddy started.
	ForeignTargets []string `json:"foreignTargets,omitempty"`
	// MaxConcurrent bounds the actions running at once on the node; a
	// trigger beyond it is skipped and reported. Default 4.
	MaxConcurrent int `json:"maxConcurrent,omitempty"`
	// StaleIntent is how old an unfinished intent found at start-up may be
	// and still be carried out; older ones (the runner was down longer)
	// are reported failed instead of acting late. Default 5m.
	StaleIntent pipeline.Duration `json:"staleIntent,omitempty"`
	// StartRetry is how long a run keeps retrying while the runtime is
	// unreachable before it is reported failed. Default 1m.
	StartRetry pipeline.Duration `json:"startRetry,omitempty"`
	// OutputBytes is how much of a container's output (its last bytes) a
	// result event carries. Default 4096; negative keeps none.
	OutputBytes int `json:"outputBytes,omitempty"`
	// Lifecycle records the runtime's container and pod lifecycle on the
	// podlifecycle stream. Default true.
	Lifecycle *bool `json:"lifecycle,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 4
	}
	if c.StaleIntent.Duration <= 0 {
		c.StaleIntent.Duration = 5 * time.Minute
	}
	if c.StartRetry.Duration <= 0 {
		c.StartRetry.Duration = time.Minute
	}
	if c.OutputBytes == 0 {
		c.OutputBytes = 4096
	}
	return c
}

// ImageAllowed reports whether the policy lets image run.
func (c Config) ImageAllowed(image string) bool {
	for _, p := range c.AllowedImages {
		if p == "*" || p == image || globMatch(p, image) {
			return true
		}
	}
	return false
}

// ForeignAllowed reports whether the policy lets stop/restart act on a
// container Eddy did not start.
func (c Config) ForeignAllowed(namespace, pod, container string) bool {
	id := namespace + "/" + pod + "/" + container
	for _, p := range c.ForeignTargets {
		if globMatch(p, id) {
			return true
		}
	}
	return false
}

// globMatch is path.Match where * may also cross a ':' (image tags) but
// never a '/'.
func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	if err == nil && ok {
		return true
	}
	// "repo/*" should allow "repo/name:tag" too; path.Match already does
	// since ':' is not a separator. A pattern without a tag matches any
	// tag of that name.
	if !strings.Contains(pattern[strings.LastIndexByte(pattern, '/')+1:], ":") {
		if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
			ok, err = path.Match(pattern, s[:i])
			return err == nil && ok
		}
	}
	return false
}
