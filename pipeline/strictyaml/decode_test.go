package strictyaml_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// upper is a TextUnmarshaler that rejects lower-case text.
type upper string

func (u *upper) UnmarshalText(b []byte) error {
	if strings.ToUpper(string(b)) != string(b) {
		return fmt.Errorf("%q is not upper-case; write %s", b, strings.ToUpper(string(b)))
	}
	*u = upper(b)
	return nil
}

type Common struct {
	ID string `json:"id"`
}

type inner struct {
	Level int               `json:"level"`
	Tags  []string          `json:"tags,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

type config struct {
	Common  `json:",inline"`
	Name    string         `json:"name"`
	Count   int8           `json:"count"`
	Size    uint16         `json:"size"`
	Ratio   float64        `json:"ratio"`
	On      bool           `json:"on"`
	Code    upper          `json:"code"`
	Inner   *inner         `json:"inner,omitempty"`
	List    []inner        `json:"list,omitempty"`
	Any     any            `json:"any,omitempty"`
	Nums    map[string]int `json:"nums,omitempty"`
	Skip    string         `json:"-"`
	hidden  string         //nolint:unused // unexported fields are never decoded
	Untaged string
	Env     map[string]string `json:"env"`
}

func decode(t *testing.T, src string) (*config, *strictyaml.Document, strictyaml.Errors) {
	t.Helper()
	docs, errs := strictyaml.Split("f.yaml", []byte(src))
	if len(errs) > 0 {
		return nil, nil, errs
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents", len(docs))
	}
	var c config
	return &c, docs[0], docs[0].Decode(&c)
}

func TestDecodeValues(t *testing.T) {
	c, doc, errs := decode(t, `
id: x1
name: "n"
count: -128
size: 0x10
ratio: 1.5e3
on: true
code: ABC
inner: {level: 2, tags: [a, b], attrs: {k: v}}
list:
  - level: 1
  - {level: 3}
any: {a: [1, 2]}
nums: {a: 1, b: 2}
Untaged: u
`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.ID != "x1" || c.Name != "n" || c.Count != -128 || c.Size != 16 || c.Ratio != 1500 || !c.On || c.Code != "ABC" ||
		c.Inner == nil || c.Inner.Level != 2 || len(c.Inner.Tags) != 2 || c.Inner.Attrs["k"] != "v" ||
		len(c.List) != 2 || c.List[1].Level != 3 || c.Nums["b"] != 2 || c.Untaged != "u" {
		t.Errorf("decoded %+v", c)
	}
	if m, ok := c.Any.(map[string]any); !ok || len(m["a"].([]any)) != 2 {
		t.Errorf("any = %#v", c.Any)
	}
	for path, line := range map[string]int{"id": 2, "inner": 9, "inner.level": 9, "list[1].level": 12, "nums.b": 14, "list[0]": 11} {
		if got := doc.PosOf(path).Line; got != line {
			t.Errorf("PosOf(%s) = line %d, want %d", path, got, line)
		}
	}
	// A path that was not written points at its nearest written parent.
	if got := doc.PosOf("inner.nothing[3].x").Line; got != 9 {
		t.Errorf("PosOf of an unwritten path = line %d, want 9", got)
	}
	if e := doc.At("list[1].level", "bad %d", 7); e.Error() != "f.yaml:12: list[1].level: bad 7" {
		t.Errorf("At = %q", e.Error())
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // Error() of each error, in order
	}{
		{"unknown field with suggestion", "nmae: x", []string{`f.yaml:1: nmae: unknown field "nmae" (did you mean "name"?)`}},
		{"unknown field lists known", "zzzzzzzz: x", []string{`f.yaml:1: zzzzzzzz: unknown field "zzzzzzzz"; known fields: id, name, count, size, ratio, on, code, inner, list, any, nums, Untaged, env`}},
		{"dash-tagged field is unknown", "Skip: x", []string{`f.yaml:1: Skip: unknown field "Skip" (did you mean "id"?)`}},
		{"unexported field is unknown", "hidden: x", []string{`f.yaml:1: hidden: unknown field "hidden"; known fields: id, name, count, size, ratio, on, code, inner, list, any, nums, Untaged, env`}},
		{"written twice", "name: a\nname: b", []string{`f.yaml:2: name: "name" is written twice`}},
		{"map key twice", "nums: {a: 1, a: 2}", []string{`f.yaml:1: nums.a: "a" is written twice`}},
		{"string from mapping", "name: {a: 1}", []string{`f.yaml:1: name: want a string, got a mapping; quote it if it is an expression`}},
		{"int overflow", "count: 300", []string{`f.yaml:1: count: want a whole number, got 300`}},
		{"negative uint", "size: -1", []string{`f.yaml:1: size: want a whole number >= 0, got -1`}},
		{"float from string", "ratio: abc", []string{`f.yaml:1: ratio: want a number, got "abc"`}},
		{"NaN", "ratio: .nan", []string{`f.yaml:1: ratio: want a number, got .nan`}},
		{"bool", "on: yes", []string{`f.yaml:1: on: want true or false, got "yes"`}},
		{"text unmarshaler", "code: abc", []string{`f.yaml:1: code: "abc" is not upper-case; write ABC`}},
		{"text unmarshaler from list", "code: [A]", []string{`f.yaml:1: code: want a single value, got a list`}},
		{"struct from scalar", "inner: 3", []string{`f.yaml:1: inner: want a mapping with fields level, tags, attrs, got 3`}},
		{"list from mapping", "list: {level: 1}", []string{`f.yaml:1: list: want a list, got a mapping`}},
		{"map from list", "nums: [1]", []string{`f.yaml:1: nums: want a mapping of name: value, got a list`}},
		{"root not a mapping", "- a", []string{`f.yaml:1: want a mapping with fields id, name, count, size, ratio, on, code, inner, list, any, nums, Untaged, env, got a list`}},
		{"all errors, nested paths", "name: [x]\ninner:\n  level: x\n  tagz: []\nlist:\n  - {level: 1}\n  - {levl: 2}\n",
			[]string{
				`f.yaml:1: name: want a string, got a list; quote it if it is an expression`,
				`f.yaml:3: inner.level: want a whole number, got "x"`,
				`f.yaml:4: inner.tagz: unknown field "tagz" (did you mean "tags"?)`,
				`f.yaml:7: list[1].levl: unknown field "levl" (did you mean "level"?)`,
			}},
		{"alias", "id: &a x\nname: *a\ncount: *a", []string{`f.yaml:1: count: want a whole number, got "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errs := decode(t, tt.src)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNullKeepsZero(t *testing.T) {
	c, _, errs := decode(t, "name: ~\ninner: null\nlist:\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.Name != "" || c.Inner != nil || c.List != nil {
		t.Errorf("decoded %+v", c)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name, src string
		kinds     []string
		err       string
	}{
		{"one", "apiVersion: v1\nkind: A\n", []string{"v1/A"}, ""},
		{"several, empty skipped", "---\nkind: A\n---\n---\n# only a comment\n---\napiVersion: x/v1\nkind: B\n...\n", []string{"/A", "x/v1/B"}, ""},
		{"not a mapping", "- a\n", []string{"/"}, ""},
		{"empty", "", nil, ""},
		{"scanner error line", "a: 1\nb: 2\nc: @x\n", nil, "f.yaml:3: invalid YAML: found character that cannot start any token"},
		{"parser error line", "a: 1\nb: 2\nc: {x: 1\nd: 3\n", nil, "f.yaml:3: invalid YAML: did not find expected ',' or '}'"},
		{"parser error line, flow list", "a: 1\nb: [1, 2\n", nil, "f.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		{"parser error line, block", "a: 1\nb: 2\n- c\n", nil, "f.yaml:3: invalid YAML: did not find expected key"},
		{"tab", "a: 1\nb:\n\t- x\n", nil, "f.yaml:3: invalid YAML: found character that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, errs := strictyaml.Split("f.yaml", []byte(tt.src))
			if got := errs.Error(); got != tt.err {
				t.Errorf("errors = %q, want %q", got, tt.err)
			}
			if tt.err != "" {
				return
			}
			var kinds []string
			for _, d := range docs {
				a, k := d.Kind()
				kinds = append(kinds, a+"/"+k)
				if d.File != "f.yaml" {
					t.Errorf("File = %q", d.File)
				}
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Errorf("kinds = %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func TestErrorsSortAndErr(t *testing.T) {
	var none strictyaml.Errors
	if none.Err() != nil {
		t.Error("empty Errors.Err() != nil")
	}
	es := strictyaml.Errors{
		{Pos: strictyaml.Pos{File: "b.yaml", Line: 1}, Msg: "b1"},
		{Pos: strictyaml.Pos{File: "a.yaml", Line: 9}, Path: "x", Msg: "a9"},
		{Pos: strictyaml.Pos{File: "a.yaml", Line: 2}, Msg: "a2"},
		{Msg: "bare"},
	}
	err := es.Err()
	want := "bare\na.yaml:2: a2\na.yaml:9: x: a9\nb.yaml:1: b1"
	if err == nil || err.Error() != want {
		t.Errorf("Err() = %v, want %q", err, want)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	docs, _ := strictyaml.Split("f.yaml", []byte("a: 1"))
	defer func() {
		if recover() == nil {
			t.Error("Decode(non-pointer) did not panic")
		}
	}()
	docs[0].Decode(config{}) // a programming error, not user input
}

// FuzzSplitDecode checks that splitting and decoding any input never
// panics, that every error has a message, and that errors of a document
// point inside the input.
func FuzzSplitDecode(f *testing.F) {
	seeds := []string{
		"id: x\nname: n\ncount: 1\ninner: {level: 2, tags: [a]}\nlist: [{level: 1}]\nnums: {a: 1}\nany: [1, {b: c}]\n",
		"nmae: x\nname: [1]\n---\nkind: A\n",
		"a: &x [*x]\n",
		"code: abc\nsize: -1\nratio: .inf\n",
		"- a\n- b\n",
		"a: 1\nb: [1, 2\n",
		"list: !!map {a: 1}\n",
		"? [a]\n: b\n",
		"\r000",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		docs, errs := strictyaml.Split("f.yaml", []byte(src))
		// YAML 1.1 line breaks, as yaml.v3 counts them.
		lines := 1 + strings.Count(strings.ReplaceAll(src, "\r\n", "\n"), "\n") + strings.Count(strings.ReplaceAll(src, "\r\n", ""), "\r") +
			strings.Count(src, "\u0085") + strings.Count(src, "\u2028") + strings.Count(src, "\u2029")
		for _, d := range docs {
			d.Kind()
			var c config
			for _, e := range d.Decode(&c) {
				if e.Msg == "" {
					t.Fatalf("error without message at %s", e.Path)
				}
				if e.Line < 1 || e.Line > lines {
					t.Fatalf("error %q at line %d of a %d-line input", e.Error(), e.Line, lines)
				}
			}
		}
		for _, e := range errs {
			if e.Msg == "" {
				t.Fatalf("split error without message")
			}
		}
	})
}

// time.Duration fields are written with a unit, as pipeline durations are;
// a bare number is refused rather than read as nanoseconds.
func TestDecodeTimeDuration(t *testing.T) {
	type cfg struct {
		D time.Duration `json:"d"`
	}
	for in, want := range map[string]time.Duration{"d: 90s": 90 * time.Second, "d: 250ms": 250 * time.Millisecond, "d: 0": 0} {
		docs, errs := strictyaml.Split("c.yaml", []byte(in))
		var c cfg
		if errs = append(errs, docs[0].Decode(&c)...); len(errs) > 0 || c.D != want {
			t.Errorf("%q: got %v, %v; want %v", in, c.D, errs, want)
		}
	}
	for in, want := range map[string]string{"d: 60": `c.yaml:1: d: "60" has no unit; use e.g. 60s`, "d: soon": `"soon" is not a duration`,
		"d: -1s": `"-1s" is not a duration`, "d: [1s]": "want a duration such as 10s"} {
		docs, _ := strictyaml.Split("c.yaml", []byte(in))
		var c cfg
		if err := docs[0].Decode(&c).Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v; want %q", in, err, want)
		}
	}
}
