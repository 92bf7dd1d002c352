package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfine(t *testing.T) {
	data := t.TempDir()
	allowed := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	dirs := []string{data, allowed}
	tests := []struct {
		path string
		ok   bool
	}{
		{"out.jsonl", true},
		{"sub/dir/out.jsonl", true},
		{filepath.Join(data, "a.jsonl"), true},
		{filepath.Join(allowed, "x", "b.jsonl"), true},
		{"../out.jsonl", false},
		{filepath.Join(data, "..", "x.jsonl"), false},
		{"/etc/cron.d/evil", false},
		{filepath.Join(outside, "c.jsonl"), false},
		{"escape/c.jsonl", false}, // a symlink inside the data dir pointing out
		{data, false},             // the directory itself is not a file
		{"", false},
	}
	for _, tt := range tests {
		got, err := Confine(tt.path, dirs)
		if (err == nil) != tt.ok {
			t.Errorf("Confine(%q) = %q, %v; want ok %v", tt.path, got, err, tt.ok)
		}
		if err != nil && tt.path != "" && !strings.Contains(err.Error(), "fileSinkDirs") {
			t.Errorf("Confine(%q): error does not say how to fix it: %v", tt.path, err)
		}
	}
	if _, err := Confine("x.jsonl", nil); err == nil {
		t.Error("no allowed directory accepted a path")
	}
}
