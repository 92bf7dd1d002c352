package pipeline

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"
)

// expr's runtime errors go on with the expression and a caret; ErrorLine
// keeps the line that says what went wrong.
func TestErrorLine(t *testing.T) {
	p, err := CompileExpr("id + 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Run(&vm.VM{}, map[string]any{"id": "x"})
	if err == nil || !strings.Contains(err.Error(), "\n") {
		t.Fatalf("want expr's multi-line runtime error, got %v", err)
	}
	line := ErrorLine(err)
	if strings.Contains(line, "\n") || !strings.HasPrefix(err.Error(), line) || line != "invalid operation: string + int (1:4)" {
		t.Fatalf("ErrorLine(%q) = %q", err, line)
	}
}
