package configspec

import (
	"encoding"
	"fmt"
	"reflect"
	"time"

	"github.com/spf13/pflag"
)

// BindFlags defines a flag for every field that has one, bound to the
// field in *cfg (a pointer to the struct the fields came from). The value
// *cfg holds when BindFlags is called is the flag's default, so a command
// sets its defaults in the struct first. usage overrides a field's summary
// for this command (Go field name -> text), e.g. to add a command-specific
// default; it may be nil.
func BindFlags(fs *pflag.FlagSet, cfg any, fields []Field, usage map[string]string) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("configspec.BindFlags: want a pointer to a struct, got %T", cfg))
	}
	v = v.Elem()
	for _, f := range fields {
		if f.Flag == "" || f.Type == "section" {
			continue
		}
		text := f.Summary()
		if u, ok := usage[f.Name]; ok {
			text = u
		}
		fv := v.FieldByIndex(f.Index)
		switch p := fv.Addr().Interface().(type) {
		case encoding.TextUnmarshaler:
			fs.Var(&textValue{p: p, typ: f.Type}, f.Flag, text)
		case *time.Duration:
			fs.DurationVar(p, f.Flag, *p, text)
		case *string:
			fs.StringVar(p, f.Flag, *p, text)
		case *bool:
			fs.BoolVar(p, f.Flag, *p, text)
		case *int:
			fs.IntVar(p, f.Flag, *p, text)
		case *int64:
			fs.Int64Var(p, f.Flag, *p, text)
		case *uint32:
			fs.Uint32Var(p, f.Flag, *p, text)
		case *[]string:
			fs.StringSliceVar(p, f.Flag, *p, text)
		default:
			// Fields only returns supported types; a named string or
			// int type without UnmarshalText lands here.
			panic(fmt.Sprintf("configspec.BindFlags: field %s has type %s: add UnmarshalText and String to it", f.Name, fv.Type()))
		}
	}
}

// textValue adapts a TextUnmarshaler + Stringer field to pflag.Value.
type textValue struct {
	p   encoding.TextUnmarshaler
	typ string
}

func (t *textValue) Set(s string) error { return t.p.UnmarshalText([]byte(s)) }
func (t *textValue) Type() string       { return t.typ }
func (t *textValue) String() string {
	if s, ok := t.p.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}
