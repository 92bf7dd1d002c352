package configspec

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ExtractDocs reads the Go package in dir and returns the doc comment of
// every field of the struct type typeName, by field name. A comment on a
// line of several names (A, B string), or above a group of consecutive
// fields without a blank line or comment of their own, applies to each.
func ExtractDocs(dir, typeName string) (map[string]string, error) {
	return extractDocs(dir, typeName, false)
}

func extractDocs(dir, typeName string, tests bool) (map[string]string, error) {
	fset := token.NewFileSet()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") && !tests {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok || ts.Name.Name != typeName {
					continue
				}
				docs := map[string]string{}
				prevText, prevEnd := "", -1
				for _, field := range st.Fields.List {
					text := strings.TrimSpace(field.Doc.Text())
					line := fset.Position(field.Pos()).Line
					if text == "" && line == prevEnd+1 {
						// A comment above a group of consecutive fields
						// ("User and Password authenticate ...") covers
						// each of them.
						text = prevText
					}
					for _, name := range field.Names {
						docs[name.Name] = text
					}
					prevText, prevEnd = text, fset.Position(field.End()).Line
				}
				return docs, nil
			}
		}
	}
	return nil, fmt.Errorf("configspec: no struct type %s in %s", typeName, dir)
}

// GoSource renders a Go file of package pkg that declares varName, a map
// from field name to doc comment, with a header saying how it was made.
// Checked by a test of the package that owns the struct: see
// CheckGenerated.
func GoSource(pkg, varName, typeName string, docs map[string]string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated from the doc comments of %s by internal/configspec; DO NOT EDIT.\n", typeName)
	fmt.Fprintf(&b, "// Regenerate with: go test -run TestConfigDocs -update (in this package).\n\n")
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	fmt.Fprintf(&b, "// %s holds the doc comment of every field of %s, for the flags,\n// the help and the config reference generated from it (internal/configspec).\n", varName, typeName)
	fmt.Fprintf(&b, "var %s = map[string]string{\n", varName)
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "\t%q: %s,\n", n, strconv.Quote(docs[n]))
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

// CheckGenerated compares the file at path with want. With update set it
// writes want there instead. The error says how to regenerate.
func CheckGenerated(path string, want []byte, update bool, how string) error {
	if update {
		return os.WriteFile(path, want, 0o644)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("%s is out of date with the code it is generated from; run %s", path, how)
	}
	return nil
}
