package engine

import (
	"fmt"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/enrich"
)

// registerStateful adds the step kinds that keep state or read runner state.
func registerStateful(r *Registry) {
	r.RegisterStep("enrich", func(b *Build) (operators.Operator, error) {
		if b.Twins == nil {
			return nil, fmt.Errorf("enrich needs device twins, and this runner has none; load Device files with --devices")
		}
		return enrich.New(b.Twins, b.Step().Enrich.Twin), nil
	})
}
