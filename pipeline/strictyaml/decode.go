// Package strictyaml decodes YAML into Go structs described by their json
// tags, strictly: unknown fields, wrong types and bad scalars are all
// reported, each with file:line, the field path and a hint, instead of
// stopping at the first. It also remembers where every field path was
// written so that later validation can point at the right line.
//
// It exists because the same Go types serve as CRD schema (json tags), YAML
// format and docs, and neither yaml.v3 nor sigs.k8s.io/yaml report every
// error with a field path and a line.
package strictyaml

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a source file.
type Pos struct {
	File string
	Line int
	Col  int
}

// Error is one problem with an input document.
type Error struct {
	Pos
	// Path is the field path, e.g. spec.steps[2].window.tumbling.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of problems; it is an error when not empty.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	es.Sort()
	return es
}

// Sort orders the errors by file and line.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
}

// Document is one decoded YAML document with the positions of its fields.
type Document struct {
	// File the document came from.
	File string
	// Root is the document's node.
	Root *yaml.Node
	// Positions maps field paths (as in Error.Path) to where they were written.
	Positions map[string]Pos
}

// At returns an Error at the position of path, or of its nearest written
// parent when path itself was not written.
func (d *Document) At(path, format string, args ...any) Error {
	return Error{Pos: d.PosOf(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// PosOf returns the position of path or of its nearest written parent.
func (d *Document) PosOf(path string) Pos {
	for p := path; ; {
		if pos, ok := d.Positions[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if pos, ok := d.Positions[""]; ok {
		return pos
	}
	return Pos{File: d.File}
}

// Split parses src into its YAML documents. Empty documents are skipped.
func Split(file string, src []byte) ([]*Document, Errors) {
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	var docs []*Document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			return docs, Errors{{Pos: Pos{File: file, Line: yamlErrLine(err)}, Msg: "invalid YAML: " + trimYAMLErr(err)}}
		}
		root := &n
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			continue
		}
		docs = append(docs, &Document{File: file, Root: root, Positions: map[string]Pos{}})
	}
	return docs, nil
}

// Decode decodes the document into out (a pointer to a struct) and returns
// every problem found.
func (d *Document) Decode(out any) Errors {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic("strictyaml: Decode needs a non-nil pointer")
	}
	dc := decoder{doc: d}
	dc.decode(d.Root, v.Elem(), "")
	return dc.errs
}

// Kind returns the document's top-level apiVersion and kind, if present.
func (d *Document) Kind() (apiVersion, kind string) {
	if d.Root.Kind != yaml.MappingNode {
		return "", ""
	}
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		switch d.Root.Content[i].Value {
		case "apiVersion":
			apiVersion = d.Root.Content[i+1].Value
		case "kind":
			kind = d.Root.Content[i+1].Value
		}
	}
	return apiVersion, kind
}

type decoder struct {
	doc  *Document
	errs Errors
}

func (dc *decoder) pos(n *yaml.Node) Pos { return Pos{File: dc.doc.File, Line: n.Line, Col: n.Column} }

func (dc *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	dc.errs = append(dc.errs, Error{Pos: dc.pos(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// decodeDuration reads a time.Duration field written as a Go duration with
// a unit ("5m", "250ms"), as everywhere else in Eddy's YAML; a bare number
// other than 0 is refused with the unit to add, not read as nanoseconds.
func (dc *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		dc.fail(n, path, "want a duration such as 10s, got %s", describe(n))
		return
	}
	if n.Value == "0" {
		v.SetInt(0)
		return
	}
	if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
		dc.fail(n, path, "%q has no unit; use e.g. %ss (units: ms, s, m, h)", n.Value, n.Value)
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		dc.fail(n, path, "%q is not a duration; use e.g. 10s, 1m30s or 250ms", n.Value)
		return
	}
	v.SetInt(int64(d))
}

func (dc *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, ok := dc.doc.Positions[path]; !ok {
		dc.doc.Positions[path] = dc.pos(n)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		dc.decode(n, v.Elem(), path)
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			dc.fail(n, path, "want a single value, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			dc.fail(n, path, "%v", err)
		}
		return
	}
	if v.Type() == durationType {
		dc.decodeDuration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		dc.decodeStruct(n, v, path)
	case reflect.Map:
		dc.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			dc.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			dc.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			dc.fail(n, path, "want a string, got %s; quote it if it is an expression", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			dc.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowInt(i) {
			dc.fail(n, path, "want a whole number, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, err := strconv.ParseUint(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowUint(i) {
			dc.fail(n, path, "want a whole number >= 0, got %s", describe(n))
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil || math.IsNaN(f) {
			dc.fail(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			dc.fail(n, path, "%s", trimYAMLErr(err))
			return
		}
		v.Set(reflect.ValueOf(&x).Elem())
	default:
		dc.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func (dc *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		dc.fail(n, path, "want a mapping of name: value, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		dc.fail(n, path, "cannot decode into %s", v.Type())
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())).IsValid() {
			dc.fail(k, sub, "%q is written twice", k.Value)
			continue
		}
		dc.doc.Positions[sub] = dc.pos(k)
		e := reflect.New(v.Type().Elem()).Elem()
		dc.decode(val, e, sub)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	}
	v.Set(m)
}

func (dc *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		dc.fail(n, path, "want a mapping with fields %s, got %s", strings.Join(fieldNames(v.Type()), ", "), describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			dc.fail(k, sub, "unknown field %q%s", k.Value, suggest(k.Value, fieldNames(v.Type())))
			continue
		}
		if seen[k.Value] {
			dc.fail(k, sub, "%q is written twice", k.Value)
			continue
		}
		seen[k.Value] = true
		dc.doc.Positions[sub] = dc.pos(k)
		dc.decode(val, v.FieldByIndex(idx), sub)
	}
}

// join appends a field name to a path, quoting names that are not plain.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func structFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			for k, idx := range structFields(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = []int{i}
	}
	return m
}

// FieldNames lists the json names of a struct type's fields in declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			names = append(names, fieldNames(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "nothing"
}

// suggest returns ` (did you mean "x"?)` for the closest candidate, or the
// list of valid names when none is close.
func suggest(got string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := distance(strings.ToLower(got), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= 2+len(got)/4 {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return "; known fields: " + strings.Join(candidates, ", ")
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlErrLine extracts the 1-based line from a yaml.v3 error. yaml.v3
// prints scanner errors with 1-based lines but parser errors ("did not find
// expected ...") with the 0-based line of the construct that was left
// open, so those are moved down by one.
func yamlErrLine(err error) int {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		rest := s[i+5:]
		j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if j > 0 {
			n, _ := strconv.Atoi(rest[:j])
			if strings.Contains(s, "did not find expected") {
				n++
			}
			return n
		}
	}
	return 0
}

func trimYAMLErr(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(s, "line "); i == 0 {
		if j := strings.Index(s, ": "); j > 0 {
			s = s[j+2:]
		}
	}
	return s
}
