package window

import (
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/aggregate"
	"github.com/eddy-edge/eddy/pipeline"
)

// Folder folds events into the accumulators of one window exactly as the
// Operator does (same argument evaluation, same missing/number rules, same
// output fields), without deciding when windows open or close. Runners that
// group events into windows themselves — the Beam translation's combiners
// (pipeline/beam) — use it so that there is one implementation of every
// aggregate, not two.
//
// A Folder is not safe for concurrent use.
type Folder struct{ op *Operator }

// NewFolder validates cfg as New does and returns a Folder for its
// aggregates. cfg.Window is only validated.
func NewFolder(cfg Config) (*Folder, error) {
	op, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Folder{op: op}, nil
}

// Specs returns the aggregates in the order of the accumulator slices.
func (f *Folder) Specs() []aggregate.Spec { return f.op.specs }

// NewAccs returns empty accumulators for one window.
func (f *Folder) NewAccs() []aggregate.Acc { return make([]aggregate.Acc, len(f.op.specs)) }

// Add folds ev into accs. An error means ev was dropped (an argument could
// not be evaluated or was not a number), as in the Operator.
func (f *Folder) Add(accs []aggregate.Acc, ev *pipeline.Event) error {
	if err := f.op.eval(ev); err != nil {
		return err
	}
	w := win{accs: accs}
	f.op.apply(&w, ev)
	return nil
}

// Merge folds src into dst.
func (f *Folder) Merge(dst, src []aggregate.Acc) {
	for i := range dst {
		dst[i].Merge(f.op.specs[i].Func, &src[i])
	}
}

// Emit emits the output event of the window [start, end) of key, exactly
// as the Operator would when it closes (Time = end - 1ns, Offset = the
// largest offset among its events).
func (f *Folder) Emit(out operators.Emitter, key string, start, end int64, accs []aggregate.Acc, offset uint64) {
	f.op.emit(out, key, start, end, end-1, accs, offset)
}
