package pipeline_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// addYAMLSeeds adds every YAML file under the given globs to the corpus.
func addYAMLSeeds(f *testing.F, globs ...string) {
	f.Helper()
	for _, g := range globs {
		files, err := filepath.Glob(g)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b))
		}
	}
}

// FuzzLoad checks that Load never panics on any input, and that every plan
// it accepts survives a round trip: the normalised spec, marshalled to JSON
// (which is YAML) and loaded again, compiles to a plan with the same hash.
func FuzzLoad(f *testing.F) {
	addYAMLSeeds(f, "testdata/plans/*.yaml", "testdata/errors/*.yaml", "../examples/*/*.yaml")
	f.Add("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: a}\nspec: {source: {mqtt: {topic: a}}, sinks: [{log: {}}], steps: [{drop: []}]}\n")
	f.Add("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: a}\nspec: {source: {mqtt: {topic: a}}, sinks: [{log: {}}], steps: [{window: {sliding: {size: 1h, every: 7s}}}, {aggregate: {n: count()}}]}\n")
	f.Fuzz(func(t *testing.T, src string) {
		plans, err := pipeline.Load("fuzz.yaml", []byte(src))
		if err != nil {
			if plans != nil {
				t.Fatalf("plans and error together")
			}
			var es strictyaml.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Load error is not a non-empty strictyaml.Errors: %T %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without file or message: %q", e.Error())
				}
			}
			return
		}
		for _, p := range plans {
			if h := pipeline.Hash(&p.Spec); h != p.Hash {
				t.Fatalf("Hash(plan.Spec) = %s, plan.Hash = %s", h, p.Hash)
			}
			doc := pipeline.Pipeline{APIVersion: pipeline.APIVersion, Kind: pipeline.Kind,
				Metadata: pipeline.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Generation: p.Version}, Spec: p.Spec}
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatalf("marshal accepted plan: %v", err)
			}
			again, err := pipeline.Load("again.yaml", b)
			if err != nil {
				t.Fatalf("re-loading the accepted plan failed: %v\ninput:\n%s\nre-marshalled:\n%s", err, src, b)
			}
			if again[0].Hash != p.Hash {
				t.Fatalf("hash changed on round trip: %s -> %s\n%s", p.Hash, again[0].Hash, b)
			}
			direct, err := pipeline.Compile(&doc)
			if err != nil {
				t.Fatalf("Compile of the accepted spec failed: %v", err)
			}
			if direct.Hash != p.Hash {
				t.Fatalf("Compile gave hash %s, Load %s", direct.Hash, p.Hash)
			}
		}
	})
}

// exprSeeds are expressions from the docs, examples and tests.
var exprSeeds = []string{
	"temperature != nil && temperature > -40",
	"temperature * 9 / 5 + 32",
	"avg_t > 30",
	"device + ':' + string(timestamp)",
	"(temperature * 9",
	"a ?? b",
	"s matches '^a.*'",
	"len(tags) > 0 && 'x' in tags",
	"a > 1 ? 'hot' : 'cold'",
	"-a ** 2",
	"not (a == b)",
	"!a",
	"1..3",
	"all(tags, # != '')",
	"{'a': 1}.a",
	"x?.y",
	"0.",
	"a * 2.0 + 1e21 - 1.5e-7",
	"",
}

// FuzzCompileExpr checks that compiling any expression never panics, and
// that when it compiles, its normalised form (used by the plan hash)
// compiles too and gives the same result on a sample event.
func FuzzCompileExpr(f *testing.F) {
	for _, s := range exprSeeds {
		f.Add(s)
	}
	env := map[string]any{"a": 2.5, "b": int64(3), "s": "abc", "temperature": 31.5, "tags": []any{"x", "y"},
		"device": "d1", "timestamp": int64(1700000000000), "x": map[string]any{"y": 1}}
	schema := pipeline.Schema{"avg_t": float64(0), "n": int64(0), "key": ""}
	f.Fuzz(func(t *testing.T, src string) {
		_, _ = pipeline.CompileExpr(src, schema)
		_ = pipeline.ExprNames(src)
		p, err := pipeline.CompileExpr(src, nil)
		if err != nil {
			return
		}
		if !utf8.ValidString(src) {
			return // YAML input is always UTF-8; expr unescapes \x83 as a rune, Go's Quote means a byte
		}
		norm := pipeline.NormalizeExpr(src)
		q, err := pipeline.CompileExpr(norm, nil)
		if err != nil {
			t.Fatalf("%q compiles but its normal form %q does not: %v", src, norm, err)
		}
		var m vm.VM
		v1, err1 := p.Run(&m, env)
		v2, err2 := q.Run(&m, env)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q -> (%v, %v) but normal form %q -> (%v, %v)", src, v1, err1, norm, v2, err2)
		}
		if err1 == nil && !sameValue(v1, v2) {
			t.Fatalf("%q = %#v but normal form %q = %#v", src, v1, norm, v2)
		}
	})
}

func sameValue(a, b any) bool {
	fa, oka := a.(float64)
	fb, okb := b.(float64)
	if oka && okb && fa != fa && fb != fb { // NaN
		return true
	}
	if reflect.TypeOf(a) != nil && reflect.TypeOf(a).Kind() == reflect.Func {
		return reflect.TypeOf(b) != nil && reflect.TypeOf(b).Kind() == reflect.Func
	}
	return reflect.DeepEqual(a, b)
}
