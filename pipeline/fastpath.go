package pipeline

import (
	"math"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// A fast condition evaluates the most common filter shapes natively:
// comparisons of a field with a number (temperature > 30, -40 <= t),
// nil checks (temperature != nil), combined with &&, ||, ! and parentheses.
// It reads a field with one map lookup and compares numbers directly,
// which is several times cheaper than the expression VM.
//
// It never decides anything the VM would decide differently: whenever a
// compared field is not a number (missing, a string, an object...), it
// gives up and the caller runs the VM on the whole expression, so results
// and errors are exactly the VM's.
type fastCond func(env map[string]any) (result, ok bool)

// compileFast returns a fast condition for src, or nil when src has
// another shape.
func compileFast(src string) fastCond {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	return fastNode(tree.Node)
}

func fastNode(n ast.Node) fastCond {
	switch x := n.(type) {
	case *ast.UnaryNode:
		if x.Operator != "!" && x.Operator != "not" {
			return nil
		}
		inner := fastNode(x.Node)
		if inner == nil {
			return nil
		}
		return func(env map[string]any) (bool, bool) {
			r, ok := inner(env)
			return !r, ok
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			l, r := fastNode(x.Left), fastNode(x.Right)
			if l == nil || r == nil {
				return nil
			}
			and := x.Operator == "&&" || x.Operator == "and"
			return func(env map[string]any) (bool, bool) {
				a, ok := l(env)
				if !ok {
					return false, false
				}
				if a != and { // short-circuit like the VM
					return a, true
				}
				return r(env)
			}
		case "==", "!=":
			if f := nilCheck(x); f != nil {
				return f
			}
			return numCompare(x)
		case "<", "<=", ">", ">=":
			return numCompare(x)
		}
	}
	return nil
}

// nilCheck handles field == nil and field != nil (either order).
func nilCheck(x *ast.BinaryNode) fastCond {
	id, ok := x.Left.(*ast.IdentifierNode)
	other := x.Right
	if !ok {
		id, ok = x.Right.(*ast.IdentifierNode)
		other = x.Left
	}
	if _, isNil := other.(*ast.NilNode); !ok || !isNil {
		return nil
	}
	name, eq := id.Value, x.Operator == "=="
	return func(env map[string]any) (bool, bool) {
		return (env[name] == nil) == eq, true
	}
}

// numCompare handles field OP number and number OP field.
func numCompare(x *ast.BinaryNode) fastCond {
	op := x.Operator
	id, ok := x.Left.(*ast.IdentifierNode)
	lit, litInt, intLit, isNum := numLiteral(x.Right)
	if !ok || !isNum {
		id, ok = x.Right.(*ast.IdentifierNode)
		lit, litInt, intLit, isNum = numLiteral(x.Left)
		if !ok || !isNum {
			return nil
		}
		op = mirror(op)
	}
	name := id.Value
	return func(env map[string]any) (bool, bool) {
		switch n := env[name].(type) {
		case float64:
			return compare(op, n, lit), true
		case int:
			if intLit { // int with int compares exactly, as the VM does
				return compare(op, n, litInt), true
			}
			return compare(op, float64(n), lit), true
		case int64:
			if intLit {
				return compare(op, int(n), litInt), true
			}
			return compare(op, float64(n), lit), true
		}
		return false, false // not a number: let the VM decide (or fail)
	}
}

func compare[T int | float64](op string, a, b T) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "==":
		return a == b
	}
	return a != b
}

// numLiteral returns a number literal's value as a float and, when it is
// whole, as an int too (wholeOK), so ints can be compared exactly.
func numLiteral(n ast.Node) (f float64, i int, whole, ok bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return float64(x.Value), x.Value, true, true
	case *ast.FloatNode:
		whole := x.Value == math.Trunc(x.Value) && math.Abs(x.Value) < 1<<53
		return x.Value, int(x.Value), whole, true
	case *ast.UnaryNode:
		if x.Operator == "-" {
			f, i, whole, ok := numLiteral(x.Node)
			return -f, -i, whole, ok
		}
	}
	return 0, 0, false, false
}

// mirror swaps the sides of a comparison: 30 < t is t > 30.
func mirror(op string) string {
	switch op {
	case "<":
		return ">"
	case "<=":
		return ">="
	case ">":
		return "<"
	case ">=":
		return "<="
	}
	return op
}
