package configspec

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
)

// Defaults names a struct value holding one command's defaults, shown in
// the reference (e.g. {"eddy edge", &edgeDefaults}).
type Defaults struct {
	// Name of the command or profile.
	Name string
	// Value is a pointer to (or a value of) the configuration struct.
	Value any
}

// Reference writes the Markdown reference of the settings: one section per
// key with its doc comment, type, flag and each profile's default.
func Reference(w io.Writer, fields []Field, defaults ...Defaults) {
	for _, f := range fields {
		fmt.Fprintf(w, "### `%s`\n\n%s\n\n", f.Key, f.Doc)
		meta := []string{"type: " + f.Type}
		if f.Flag != "" {
			meta = append(meta, fmt.Sprintf("flag: `--%s`", f.Flag))
		} else {
			meta = append(meta, "file only")
		}
		var ds []string
		for _, d := range defaults {
			if s := valueString(d.Value, f); s != "" {
				ds = append(ds, fmt.Sprintf("`%s` (%s)", s, d.Name))
			}
		}
		if len(ds) > 0 {
			meta = append(meta, "default: "+strings.Join(ds, ", "))
		}
		fmt.Fprintf(w, "%s\n\n", strings.Join(meta, " · "))
	}
}

// KeyList renders the keys and their summaries as an indented two-column
// list for a command's help.
func KeyList(fields []Field) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Key, f.Summary())
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// valueString formats a field's value in v ("" for a zero value).
func valueString(v any, f Field) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	fv := rv.FieldByIndex(f.Index)
	if fv.IsZero() {
		return ""
	}
	if s, ok := fv.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if !fv.CanAddr() {
		return fmt.Sprint(fv.Interface())
	}
	if s, ok := fv.Addr().Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if fv.Kind() == reflect.Slice {
		parts := make([]string, fv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(fv.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(fv.Interface())
}
