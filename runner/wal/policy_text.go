package wal

import "fmt"

// UnmarshalText reads a policy name (used by flags and config files); it
// refuses unknown names with the ones that exist.
func (p *Policy) UnmarshalText(b []byte) error {
	switch q := Policy(b); q {
	case Block, DropOldest:
		*p = q
		return nil
	}
	return fmt.Errorf("retention policy %q is unknown; use %q (keep what a pipeline has not read) or %q", b, Block, DropOldest)
}

// String returns the policy's name; the zero policy is Block.
func (p Policy) String() string {
	if p == "" {
		return string(Block)
	}
	return string(p)
}
