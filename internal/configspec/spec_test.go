package configspec

import (
	"bytes"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// period is a TextUnmarshaler + Stringer setting type, like a duration.
type period time.Duration

func (p *period) UnmarshalText(b []byte) error {
	d, err := time.ParseDuration(string(b))
	*p = period(d)
	return err
}
func (p period) String() string { return time.Duration(p).String() }

type inner struct {
	// Addr is the listen address. Default :1.
	Addr string `json:"addr" flag:"addr"`
}

type sub struct {
	// Deep is nested; Sub.Deep, not Verbose, is its sibling.
	Deep map[string]string `json:"deep"`
}

type sample struct {
	inner
	// Every is how often it runs, e.g. 10s. Use HTTPAddr elsewhere; Sub.Deep is unrelated.
	Every period `json:"every" flag:"every"`
	// Files are the inputs.
	Files []string `json:"files" flag:"-"`
	// Verbose makes it talk.
	Verbose bool `json:"verbose" flag:"verbose"`
	// Sub is a section; see Sub.Deep and Verbose. Addr and Files are
	// words.
	Sub sub `json:"sub"`
	// Log is not a setting.
	Log    *bytes.Buffer `json:"-"`
	hidden int           // unexported: not a setting
}

func TestFieldsFlagsAndReference(t *testing.T) {
	docs, err := extractDocs(".", "sample", true)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := extractDocs(".", "inner", true)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range inner {
		docs[k] = v
	}
	subDocs, err := extractDocs(".", "sub", true)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range subDocs {
		docs["Sub."+k] = v
	}
	fields, err := Fields(reflect.TypeFor[sample](), docs)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.Key+":"+f.Flag+":"+f.Type)
	}
	if got := strings.Join(keys, " "); got != "addr:addr:string every:every:period files::list verbose:verbose:bool sub::section sub.deep::map" {
		t.Errorf("fields %s", got)
	}
	if got := fields[4].Doc; got != "sub is a section; see sub.deep and Verbose. Addr and Files are\nwords." {
		t.Errorf("section doc %q", got)
	}
	if got := fields[5].Doc; got != "deep is nested; sub.deep, not Verbose, is its sibling." {
		t.Errorf("nested doc %q", got)
	}
	if got := fields[5].Summary(); got != "nested; sub.deep, not Verbose, is its sibling" {
		t.Errorf("nested summary %q", got)
	}
	if got := fields[1].Summary(); got != "how often it runs, e.g. 10s" {
		t.Errorf("summary %q", got)
	}
	if !strings.Contains(fields[1].Doc, "sub.deep is unrelated") || !strings.Contains(fields[1].Doc, "HTTPAddr") {
		t.Errorf("Go names in docs are not shown as keys: %q", fields[1].Doc)
	}

	cfg := sample{Every: period(time.Second)}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	BindFlags(fs, &cfg, fields, nil)
	if err := fs.Parse([]string{"--addr", ":9", "--every", "1m", "--verbose"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9" || cfg.Every != period(time.Minute) || !cfg.Verbose {
		t.Errorf("flags gave %+v", cfg)
	}
	if fs.Lookup("files") != nil {
		t.Error(`flag:"-" made a flag`)
	}
	if err := fs.Parse([]string{"--every", "soon"}); err == nil {
		t.Error("a bad value was accepted")
	}
	if !strings.Contains(fs.FlagUsages(), "(default 1s)") {
		t.Errorf("default not shown:\n%s", fs.FlagUsages())
	}

	var b bytes.Buffer
	def := sample{Every: period(time.Second)}
	Reference(&b, fields, Defaults{Name: "cmd", Value: &def})
	for _, want := range []string{"### `every`", "type: period · flag: `--every` · default: `1s` (cmd)", "### `files`", "file only"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("reference lacks %q:\n%s", want, b.String())
		}
	}
	if got := KeyList(fields); !regexp.MustCompile(`(?m)^  every +how often it runs, e.g. 10s$`).MatchString(got) {
		t.Errorf("key list:\n%s", got)
	}
}

func TestFieldsRefuseUndocumentedAndUnsupported(t *testing.T) {
	type bad struct {
		NoTag   string
		NoDoc   string         `json:"noDoc"`
		Channel chan int       `json:"channel"`
		Map     map[string]int `json:"map"` // unsupported: not string to string
	}
	_, err := Fields(reflect.TypeFor[bad](), map[string]string{"Channel": "x", "Map": "y"})
	for _, want := range []string{"NoTag has no json tag", "NoDoc has no doc comment", "Channel: type chan int is not supported", "Map: type map[string]int"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want %q", err, want)
		}
	}
}

func TestCheckGenerated(t *testing.T) {
	p := t.TempDir() + "/gen.go"
	if err := CheckGenerated(p, []byte("a"), false, "make gen"); err == nil || !strings.Contains(err.Error(), "run make gen") {
		t.Errorf("missing file: %v", err)
	}
	if err := CheckGenerated(p, []byte("a"), true, ""); err != nil {
		t.Fatal(err)
	}
	if err := CheckGenerated(p, []byte("a"), false, ""); err != nil {
		t.Error(err)
	}
	if err := CheckGenerated(p, []byte("b"), false, ""); err == nil {
		t.Error("a changed file passed")
	}
	src, err := GoSource("p", "Docs", "T", map[string]string{"B": "b \"q\"", "A": "a"})
	if err != nil || !strings.Contains(string(src), "\"A\": \"a\",\n\t\"B\": \"b \\\"q\\\"\",") {
		t.Errorf("GoSource: %v\n%s", err, src)
	}
}
