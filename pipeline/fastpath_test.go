package pipeline

import (
	"math"
	"testing"

	"github.com/expr-lang/expr/vm"
)

var fastExprs = []string{
	"temperature > 30", "temperature >= 30.5", "30 < temperature", "-40 <= temperature",
	"temperature != nil && temperature > -40", "temperature == nil || temperature < 0",
	"!(temperature > 30)", "not (t == 3)", "t != 3.0", "a > 1 and b < 2", "a > 1 or b < 2",
	"n == 9007199254740993",
}

var fastEnvs = []map[string]any{
	{}, {"temperature": 31.0}, {"temperature": 30}, {"temperature": int64(-41)}, {"temperature": "hot"},
	{"temperature": nil}, {"t": 3}, {"t": 3.0}, {"t": math.NaN()}, {"a": 2, "b": 1}, {"a": 0, "b": "x"},
	{"a": "x", "b": 1}, {"n": int64(9007199254740992)}, {"n": 9007199254740993}, {"temperature": true},
}

// The fast path must agree with the VM on every result, and give up
// (leaving errors to the VM) exactly where the VM would not give a bool.
func TestFastPathAgreesWithVM(t *testing.T) {
	for _, src := range fastExprs {
		p, err := CompileExpr(src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Errorf("%q: no fast path", src)
			continue
		}
		for _, env := range fastEnvs {
			checkFast(t, p, env)
		}
	}
	for _, src := range []string{"temperature * 2 > 30", "name == 'x'", "temperature > other", "len(tags) > 1"} {
		if p, err := CompileExpr(src, nil); err == nil && p.fast != nil {
			t.Errorf("%q should not take the fast path", src)
		}
	}
}

func checkFast(t *testing.T, p *Program, env map[string]any) {
	t.Helper()
	var m vm.VM
	want, werr := m.Run(p.prog, env)
	got, ok := p.fast(env)
	if !ok {
		return // the VM decides
	}
	if werr != nil {
		t.Errorf("%q on %v: fast path gave %v, the VM failed: %v", p.Source, env, got, werr)
		return
	}
	if wb, isBool := want.(bool); !isBool || wb != got {
		t.Errorf("%q on %v: fast path %v, VM %v", p.Source, env, got, want)
	}
}

func FuzzFastPath(f *testing.F) {
	for _, s := range fastExprs {
		f.Add(s, 1.5, int64(3), "")
	}
	f.Fuzz(func(t *testing.T, src string, x float64, n int64, s string) {
		p, err := CompileExpr(src, nil)
		if err != nil || p.fast == nil {
			return
		}
		for _, env := range []map[string]any{
			{"temperature": x, "t": n, "a": x, "b": n, "n": n},
			{"temperature": n, "t": x, "a": s, "b": nil, "n": x},
			{},
		} {
			checkFast(t, p, env)
		}
	})
}
