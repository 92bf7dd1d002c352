package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Action kinds (ActionSink.Do).
const (
	ActionRun     = "run"
	ActionStop    = "stop"
	ActionRestart = "restart"
)

// Concurrency policies (ActionSink.Concurrency), as in a Kubernetes
// CronJob.
const (
	// ConcurrencyForbid skips a trigger while a run of the same action is
	// still going (the skip is reported).
	ConcurrencyForbid = "forbid"
	// ConcurrencyReplace stops the running one and starts the new one.
	ConcurrencyReplace = "replace"
	// ConcurrencyAllow runs them side by side (bounded by the edge's
	// maxConcurrent).
	ConcurrencyAllow = "allow"
)

// ParseCPU parses a CPU quantity, "0.5" or "500m", into millicores.
func ParseCPU(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("cpu %q: use cores (0.5) or millicores (500m)", s)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || f > 1e6 {
		return 0, fmt.Errorf("cpu %q: use cores (0.5) or millicores (500m)", s)
	}
	return int64(math.Ceil(f * 1000)), nil
}

// ParseMemory parses a memory quantity (bytes, or with a suffix k M G T,
// Ki Mi Gi Ti) into bytes.
func ParseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mul    int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	num, mul := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mul = n, u.mul
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mul {
		return 0, fmt.Errorf("memory %q: use bytes or a quantity such as 64Mi or 1G", s)
	}
	if n*mul < 4<<20 {
		return 0, fmt.Errorf("memory %q: below 4Mi no container starts", s)
	}
	return n * mul, nil
}

// action checks an action sink.
func (c *compiler) action(path string, a *ActionSink, schema Schema) {
	switch a.Do {
	case "", ActionRun:
		if a.Image == "" {
			c.errorf(path+".image", "is required to run a container, e.g. image: localhost/eddy/busybox:1.35")
		}
		if a.Target != nil {
			c.errorf(path+".target", "is for do: stop or restart; a run action starts its own container")
		}
	case ActionStop, ActionRestart:
		if a.Target == nil || (a.Target.Namespace == "" && a.Target.Pod == "" && a.Target.Container == "" && len(a.Target.Labels) == 0) {
			c.errorf(path+".target", "do: %s needs a target, e.g. target: {pod: \"{{pod}}\", container: \"{{container}}\"}", a.Do)
		}
		if a.Image != "" || len(a.Command) > 0 || len(a.Args) > 0 || len(a.Env) > 0 {
			c.errorf(path, "image, command, args and env are for do: run; do: %s acts on existing containers", a.Do)
		}
	default:
		c.errorf(path+".do", "unknown action %q; use run, stop or restart", a.Do)
	}
	for i, st := range a.On {
		if st != "firing" && st != "resolved" {
			c.errorf(fmt.Sprintf("%s.on[%d]", path, i), "unknown alert state %q; use firing or resolved", st)
		}
	}
	if a.When != "" {
		c.exprCheck(path+".when", a.When, schema)
	}
	if a.Episode != "" {
		c.template(path+".episode", a.Episode, schema)
	}
	for i, s := range a.Command {
		c.template(fmt.Sprintf("%s.command[%d]", path, i), s, schema)
	}
	for i, s := range a.Args {
		c.template(fmt.Sprintf("%s.args[%d]", path, i), s, schema)
	}
	for _, k := range sortedKeys(a.Env) {
		if k == "" || strings.ContainsAny(k, "=\\x00") {
			c.errorf(path+".env", "invalid variable name %q", k)
		}
		c.template(path+".env."+k, a.Env[k], schema)
	}
	if _, err := ParseCPU(a.CPU); err != nil {
		c.errorf(path+".cpu", "%v", err)
	}
	if _, err := ParseMemory(a.Memory); err != nil {
		c.errorf(path+".memory", "%v", err)
	}
	if a.Timeout != nil && a.Timeout.Duration <= 0 {
		c.errorf(path+".timeout", "must be > 0, e.g. timeout: 2m")
	}
	switch a.Concurrency {
	case "", ConcurrencyForbid, ConcurrencyReplace, ConcurrencyAllow:
	default:
		c.errorf(path+".concurrency", "unknown policy %q; use forbid, replace or allow", a.Concurrency)
	}
	if t := a.Target; t != nil {
		for name, v := range map[string]string{"namespace": t.Namespace, "pod": t.Pod, "container": t.Container} {
			if v != "" {
				c.template(path+".target."+name, v, schema)
			}
		}
	}
}
