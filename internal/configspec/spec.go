// Package configspec turns one configuration struct into everything a user
// sees of it: command-line flags, the reference page of the config file and
// the list of keys in a command's help. It owns the mechanism only; the
// settings themselves live in the struct (runner.Config and the command's
// own settings), where each is one field:
//
//	// MQTTAddr is the broker's TCP listener. Default 127.0.0.1:1883.
//	MQTTAddr string `json:"mqttAddr,omitempty" flag:"mqtt-addr"`
//
// The json tag is the key in the YAML/JSON config file, the flag tag the
// command-line flag (`flag:"-"` or no flag tag: file only), and the doc
// comment the documentation. Go does not keep doc comments at run time, so
// they are extracted from the source by ExtractDocs into a generated Go file
// (a map from field name to comment); a test in each package regenerates
// that file and fails when it differs, so the help cannot drift from the
// comments.
//
// Fields of type string, bool, int, int64, uint32, time.Duration,
// []string, map[string]string, a pointer to one of these (file only), a
// struct (a section of nested keys, file only) and any type
// whose pointer implements encoding.TextUnmarshaler and fmt.Stringer (a
// duration, a size, a policy) are supported; an anonymous embedded struct
// without a json name contributes its fields inline, as encoding/json does.
package configspec

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Field is one setting of a configuration struct.
type Field struct {
	// Name is the Go path of the field from the root struct: "DataDir",
	// or "Link.Hub" inside the section Link. It is the key of the docs map.
	Name string
	// Key is the config file key: the json name, dotted inside a section
	// ("link.hub").
	Key string
	// Flag is the command-line flag name without dashes; empty when the
	// setting is only read from the file.
	Flag string
	// Type names the value's type as users see it: string, bool, int,
	// list, map, duration, size, section, ...
	Type string
	// Doc is the field's doc comment, from the docs map, with Go field
	// names replaced by their keys.
	Doc string
	// Index locates the field in the root struct (FieldByIndex).
	Index []int
}

// Summary is the first sentence of the field's doc comment without the
// leading key and "is"/"are" ("mqttAddr is the broker's TCP listen
// address." -> "the broker's TCP listen address"), for flag usage lines and
// help.
func (f Field) Summary() string {
	s := strings.Join(strings.Fields(f.Doc), " ")
	s = firstSentence(s)
	last := lastPart(f.Key)
	if rest, ok := strings.CutPrefix(s, last+" "); ok && !strings.HasPrefix(rest, "and ") {
		s = rest
		for _, verb := range []string{"is ", "are "} {
			s = strings.TrimPrefix(s, verb)
		}
	}
	return s
}

// firstSentence cuts s after its first ". " that does not end an
// abbreviation such as e.g., and drops the period.
func firstSentence(s string) string {
	from := 0
	for {
		i := strings.Index(s[from:], ". ")
		if i < 0 {
			return strings.TrimSuffix(s, ".")
		}
		end := from + i
		if !strings.HasSuffix(s[:end], "e.g") && !strings.HasSuffix(s[:end], "i.e") {
			return s[:end]
		}
		from = end + 2
	}
}

// lastPart is the last component of a dotted key.
func lastPart(key string) string { return key[strings.LastIndex(key, ".")+1:] }

// upper matches an upper-case letter.
var upper = regexp.MustCompile(`[A-Z]`)

// goName matches a word that could be an exported Go field name; only
// dotted or camel-case ones (AuthFile, HTTPAddr, Link.Hub) are renamed.
var goName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)*\b`)

// renameFields replaces the Go field names in docs with their config keys,
// so that the comments read right in the reference and the help
// ("set AuthFile" -> "set authFile"). Single capitalised words are left
// alone: "Devices" may be the English word. A name is looked up among the
// field's siblings first, then from the root ("Link.Hub").
func renameFields(fields []Field) {
	keys := map[string]string{}
	for _, f := range fields {
		keys[f.Name] = f.Key
	}
	for i := range fields {
		parent := ""
		if j := strings.LastIndex(fields[i].Name, "."); j >= 0 {
			parent = fields[i].Name[:j+1]
		}
		own := fields[i].Name[len(parent):]
		if rest, ok := strings.CutPrefix(fields[i].Doc, own+" "); ok && !strings.HasPrefix(rest, "and ") {
			// Go's convention: the comment starts with the field's name.
			fields[i].Doc = lastPart(fields[i].Key) + " " + rest
		}
		fields[i].Doc = goName.ReplaceAllStringFunc(fields[i].Doc, func(w string) string {
			if !strings.Contains(w, ".") && len(upper.FindAllString(w, 2)) < 2 {
				return w // "Devices", "Node": maybe just a word of the sentence
			}
			if k, ok := keys[parent+w]; ok && !strings.Contains(w, ".") {
				return k[strings.LastIndex(k, ".")+1:] // a sibling: its own name
			}
			if k, ok := keys[w]; ok {
				return k
			}
			return w
		})
	}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	stringer        = reflect.TypeFor[fmt.Stringer]()
)

// Fields lists the settings of the struct type t (a struct or a pointer to
// one) in declaration order, with docs from docs (Go field name -> doc
// comment; see ExtractDocs). Fields tagged json:"-" are not settings (a
// logger, a clock, a callback) and are left out. It returns an error naming
// the field when a setting has no doc or a type it cannot handle, so that
// a test over every configuration type catches both.
func Fields(t reflect.Type, docs map[string]string) ([]Field, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("configspec: %s is not a struct", t)
	}
	var out []Field
	var errs []string
	var walk func(t reflect.Type, index []int, name, key string)
	walk = func(t reflect.Type, index []int, name, key string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			jsonKey, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if jsonKey == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if sf.Anonymous && jsonKey == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx, name, key) // inline, as encoding/json does
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if jsonKey == "" {
				errs = append(errs, fmt.Sprintf("%s%s has no json tag: give it its config file key, or json:\"-\" if it is not a setting", name, sf.Name))
				continue
			}
			f := Field{Name: name + sf.Name, Key: key + jsonKey, Flag: sf.Tag.Get("flag"), Index: idx}
			f.Doc = strings.TrimSpace(docs[f.Name])
			if f.Flag == "-" {
				f.Flag = ""
			}
			if f.Doc == "" {
				errs = append(errs, fmt.Sprintf("%s has no doc comment (or the generated docs are stale: regenerate them)", f.Name))
			}
			if typ, ok := typeName(sf.Type); ok {
				f.Type = typ
				out = append(out, f)
				continue
			}
			if sf.Type.Kind() == reflect.Struct && f.Flag == "" {
				// A section: its settings are nested keys, file only.
				f.Type = "section"
				out = append(out, f)
				walk(sf.Type, idx, f.Name+".", f.Key+".")
				continue
			}
			errs = append(errs, fmt.Sprintf("%s: type %s is not supported (use a string, bool, int, []string, map[string]string, a struct section or a type with UnmarshalText and String)", f.Name, sf.Type))
		}
	}
	walk(t, nil, "", "")
	renameFields(out)
	if len(errs) > 0 {
		return out, fmt.Errorf("configspec: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// MustFields is Fields for types whose docs are generated and checked by a
// test: an error there is a programming error.
func MustFields(t reflect.Type, docs map[string]string) []Field {
	fs, err := Fields(t, docs)
	if err != nil {
		panic(err)
	}
	return fs
}

func typeName(t reflect.Type) (string, bool) {
	if t == reflect.TypeFor[time.Duration]() {
		return "duration", true
	}
	if t.Kind() == reflect.Pointer && t.Elem().Kind() != reflect.Struct {
		// An optional value (*bool: unset means the default).
		return typeName(t.Elem())
	}
	if pt := reflect.PointerTo(t); pt.Implements(textUnmarshaler) && (t.Implements(stringer) || pt.Implements(stringer)) {
		return strings.ToLower(t.Name()), true
	}
	switch t.Kind() {
	case reflect.String:
		return "string", true
	case reflect.Bool:
		return "bool", true
	case reflect.Int, reflect.Int64:
		return "int", true
	case reflect.Uint32:
		return "uint", true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list", true
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return "map", true
		}
	}
	return "", false
}
