package pipeline_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
)

// referencePath is the generated page, relative to this package.
const referencePath = "../docs/pipelines-reference.md"

// semanticStrings names the string fields whose values are not plain text,
// so the reference can say what a user writes there. A name here that is
// no longer a field of types.go fails the test.
var semanticStrings = map[string]string{
	"Spec.EventTime":       "expression",
	"Spec.Key":             "expression",
	"Step.Filter":          "expression",
	"Step.Map":             "map of field name to expression",
	"Step.Aggregate":       "map of field name to aggregate call",
	"AlertSpec.When":       "expression",
	"AlertSpec.Message":    "template",
	"DedupeSpec.Key":       "expression",
	"MQTTSource.Topic":     "topic filter",
	"MQTTSink.Topic":       "template",
	"ObjectMeta.Name":      "DNS label",
	"ObjectMeta.Namespace": "DNS label",
}

// TestReferenceDocs renders docs/pipelines-reference.md from the types and
// doc comments of pipeline/types.go, walking from Pipeline down through
// every struct it reaches. With -update it writes the page; without, it
// fails when the page is out of date, so the docs cannot drift from the code.
func TestReferenceDocs(t *testing.T) {
	got, err := renderReference()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, referencePath, got)
}

type refField struct {
	goName, json, typ, doc string
	required               bool
}

type refType struct {
	name, doc string
	fields    []refField
}

func renderReference() ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "types.go", nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	pkg, err := doc.NewFromFiles(fset, []*ast.File{f}, "github.com/eddy-edge/eddy/pipeline")
	if err != nil {
		return nil, err
	}
	structs := map[string]*doc.Type{}
	for _, ty := range pkg.Types {
		structs[ty.Name] = ty
	}
	used := map[string]bool{}
	var order []*refType
	seen := map[string]bool{}
	queue := []string{"Pipeline"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		ty := structs[name]
		st, ok := ty.Decl.Specs[0].(*ast.TypeSpec).Type.(*ast.StructType)
		if !ok {
			return nil, fmt.Errorf("%s is not a struct", name)
		}
		rt := &refType{name: name, doc: paragraph(ty.Doc)}
		for _, fl := range st.Fields.List {
			if len(fl.Names) != 1 {
				return nil, fmt.Errorf("%s: embedded or multi-name field; the generator needs one name per field", name)
			}
			goName := fl.Names[0].Name
			tag := ""
			if fl.Tag != nil {
				tag, _ = strconv.Unquote(fl.Tag.Value)
			}
			jsonName, opts, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
			if jsonName == "" || jsonName == "-" {
				return nil, fmt.Errorf("%s.%s has no json name", name, goName)
			}
			typ, refs := userType(fl.Type, structs)
			if s, ok := semanticStrings[name+"."+goName]; ok {
				typ = s
				used[name+"."+goName] = true
			}
			queue = append(queue, refs...)
			d := paragraph(fl.Doc.Text())
			if rest, ok := strings.CutPrefix(d, goName+" "); ok {
				d = "`" + jsonName + "` " + rest
			}
			rt.fields = append(rt.fields, refField{goName: goName, json: jsonName, typ: typ, doc: d,
				required: !strings.Contains(opts, "omitempty")})
		}
		order = append(order, rt)
	}
	for k := range semanticStrings {
		if !used[k] {
			return nil, fmt.Errorf("semanticStrings names %s, which is not a field reachable from Pipeline", k)
		}
	}

	var b bytes.Buffer
	b.WriteString("<!-- Generated from pipeline/types.go by TestReferenceDocs. Do not edit: change the doc comments\n")
	b.WriteString("     and run `go test ./pipeline -run TestReferenceDocs -update`. -->\n\n")
	b.WriteString("# Pipeline reference\n\n")
	fmt.Fprintf(&b, "Every field of a `%s` / `%s` resource, from the Go types that are also its schema.\n", pipeline.APIVersion, pipeline.Kind)
	b.WriteString("For concepts and examples see [pipelines.md](pipelines.md).\n\n")
	b.WriteString("Types: *duration* is a number with a unit (`250ms`, `10s`, `1m30s`, `2h`; a bare number is an error);\n")
	b.WriteString("*expression* is an [expr-lang](https://expr-lang.org/docs/language-definition) expression over the event's fields;\n")
	b.WriteString("*template* is text in which `{{field}}` is replaced by the event's field (`{{key}}` is the partition key).\n")
	b.WriteString("Fields marked *required* have no default.\n\n")
	b.WriteString("Contents:")
	for i, rt := range order {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s [%s](#%s)", sep, rt.name, strings.ToLower(rt.name))
	}
	b.WriteString(", [Aggregate functions](#aggregate-functions).\n")
	for _, rt := range order {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", rt.name, rt.doc)
		b.WriteString("| Field | Type | Description |\n|---|---|---|\n")
		for _, f := range rt.fields {
			req := ""
			if f.required {
				req = " *required*"
			}
			fmt.Fprintf(&b, "| `%s` | %s%s | %s |\n", f.json, f.typ, req, cell(f.doc))
		}
	}
	b.WriteString("\n## Aggregate functions\n\n")
	b.WriteString("An `aggregate` entry is `name: \"function(expression)\"`; `count()` takes no argument (`count(x)` counts events where `x` is not nil).\n\n")
	b.WriteString("| Function | Result |\n|---|---|\n")
	for _, fn := range pipeline.AggregateFuncs() {
		res := "number"
		switch pipeline.AggregateSample(fn).(type) {
		case int64:
			res = "integer"
		case float64:
		default:
			res = "a value of the argument (any type)"
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", fn, res)
	}
	return b.Bytes(), nil
}

// userType describes a Go type in the words a YAML author uses, and
// returns the struct types it refers to.
func userType(e ast.Expr, structs map[string]*doc.Type) (string, []string) {
	switch x := e.(type) {
	case *ast.StarExpr:
		return userType(x.X, structs)
	case *ast.Ident:
		switch x.Name {
		case "string":
			return "string", nil
		case "int", "int64", "int32":
			return "integer", nil
		case "bool":
			return "true or false", nil
		case "Duration":
			return "duration", nil
		}
		if _, ok := structs[x.Name]; ok {
			return fmt.Sprintf("[%s](#%s)", x.Name, strings.ToLower(x.Name)), []string{x.Name}
		}
		return x.Name, nil
	case *ast.ArrayType:
		el, refs := userType(x.Elt, structs)
		if el == "string" {
			el = "strings"
		}
		return "list of " + el, refs
	case *ast.MapType:
		k, _ := userType(x.Key, structs)
		v, refs := userType(x.Value, structs)
		return fmt.Sprintf("map of %s to %s", k, v), refs
	}
	return fmt.Sprintf("%T", e), nil
}

// paragraph joins a doc comment's lines into one line.
func paragraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
