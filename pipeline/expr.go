package pipeline

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Schema describes the fields an event is known to carry at some point of a
// pipeline. A nil Schema means "not known" (events straight from a device):
// any name may be used and a missing field is a runtime error on that event.
// A non-nil Schema is checked strictly: a name not in it is a compile error.
type Schema map[string]any

// With returns a copy of s with extra fields set to sample values of their
// type (nil for unknown types). A nil s stays nil.
func (s Schema) With(fields map[string]any) Schema {
	if s == nil {
		return nil
	}
	out := make(Schema, len(s)+len(fields))
	for k, v := range s {
		out[k] = v
	}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

// Names returns the field names in s, sorted.
func (s Schema) Names() []string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Program is a compiled expression, ready to run on an event's fields.
// Running needs a *vm.VM, which is not safe for concurrent use: each
// operator keeps its own.
type Program struct {
	// Source is the expression as written.
	Source string
	prog   *vm.Program
	fast   fastCond // nil unless the expression has a shape fastpath.go handles
}

// CompileExpr compiles an expression against a schema. The error says what
// is wrong in terms of the expression.
func CompileExpr(src string, schema Schema) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	opts := []expr.Option{expr.Optimize(true)}
	if schema == nil {
		// An empty map environment (rather than none) lets the VM read
		// fields with a plain map lookup instead of reflection: 2x faster
		// and no allocation per evaluation.
		opts = append(opts, expr.Env(map[string]any{}), expr.AllowUndefinedVariables())
	} else {
		opts = append(opts, expr.Env(map[string]any(schema)))
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, exprError(err)
	}
	return &Program{Source: src, prog: p, fast: compileFast(src)}, nil
}

// Run evaluates the program on env with the given VM.
func (p *Program) Run(m *vm.VM, env map[string]any) (any, error) {
	return m.Run(p.prog, env)
}

// RunBool evaluates a condition. A result that is not a bool is an error.
func (p *Program) RunBool(m *vm.VM, env map[string]any) (bool, error) {
	if p.fast != nil {
		if b, ok := p.fast(env); ok {
			return b, nil
		}
	}
	v, err := m.Run(p.prog, env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%q gave %T %v, want true or false", p.Source, v, v)
	}
	return b, nil
}

// NormalizeExpr returns a canonical spelling of an expression (same meaning,
// same string), used for plan hashing. On a parse error it returns src.
func NormalizeExpr(src string) string {
	tree, err := parser.Parse(src)
	if err != nil {
		return strings.TrimSpace(src)
	}
	ast.Walk(&tree.Node, floatSpelling{})
	return tree.Node.String()
}

// floatSpelling makes float literals print as floats: expr prints 2.0 as
// "2", which reads back as an int (2.0 and 2 differ: type(2.0) is float).
// The node is replaced by an identifier only to control the printed text;
// the tree is thrown away after printing.
type floatSpelling struct{}

func (floatSpelling) Visit(n *ast.Node) {
	f, ok := (*n).(*ast.FloatNode)
	if !ok || math.IsInf(f.Value, 0) || math.IsNaN(f.Value) {
		return
	}
	s := strconv.FormatFloat(f.Value, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	ast.Patch(n, &ast.IdentifierNode{Value: s})
}

// ExprNames returns the identifiers an expression reads (its free variables).
func ExprNames(src string) []string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &nameVisitor{seen: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	sort.Strings(v.names)
	return v.names
}

type nameVisitor struct {
	seen  map[string]bool
	names []string
}

func (v *nameVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && !v.seen[id.Value] {
		v.seen[id.Value] = true
		v.names = append(v.names, id.Value)
	}
}

// exprError turns expr's multi-line error (with a caret under the problem)
// into one line that says where in the expression the problem is.
func exprError(err error) error {
	return errors.New(ErrorLine(err))
}

// ErrorLine is the first line of an error from compiling or running a
// Program. expr's errors go on with the expression and a caret under the
// problem, which a one-line log entry or dead-letter reason does not want.
func ErrorLine(err error) string {
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}
