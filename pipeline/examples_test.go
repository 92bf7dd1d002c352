package pipeline_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// TestExamplesCompile loads every examples/**/*.yaml file that declares
// kind: Pipeline and compiles it, so that no example shows a pipeline
// that does not compile. Documents of other kinds (Device, DeviceModel...)
// are skipped.
func TestExamplesCompile(t *testing.T) {
	n := 0
	err := filepath.WalkDir("../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, errs := strictyaml.Split(path, src)
		if len(errs) > 0 {
			t.Errorf("%v", errs)
			return nil
		}
		for _, doc := range docs {
			if _, kind := doc.Kind(); kind != pipeline.Kind {
				continue
			}
			n++
			p, derrs := pipeline.Decode(doc)
			if len(derrs) > 0 {
				t.Errorf("%v", derrs.Err())
				continue
			}
			if _, cerrs := pipeline.CompileDoc(p, doc); len(cerrs) > 0 {
				t.Errorf("%v", cerrs.Err())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("found only %d example pipelines under examples/", n)
	}
}

// TestGuideExamplesAreFiles checks that every pipeline shown in
// docs/pipelines.md is one of the example files, byte for byte: a YAML
// block that declares kind: Pipeline must start with "# examples/PATH" and
// equal that file, which TestExamplesCompile compiles.
func TestGuideExamplesAreFiles(t *testing.T) {
	guide, err := os.ReadFile("../docs/pipelines.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlocks(guide)
	n := 0
	for _, b := range blocks {
		if !strings.Contains(b.text, "kind: Pipeline") {
			continue
		}
		n++
		first, _, _ := strings.Cut(b.text, "\n")
		path, ok := strings.CutPrefix(first, "# examples/")
		if !ok {
			t.Errorf("docs/pipelines.md:%d: a pipeline example must start with \"# examples/<dir>/<file>.yaml\" and be that file", b.line)
			continue
		}
		want, err := os.ReadFile(filepath.Join("../examples", path))
		if err != nil {
			t.Errorf("docs/pipelines.md:%d: %v", b.line, err)
			continue
		}
		if string(want) != b.text {
			t.Errorf("docs/pipelines.md:%d: the block differs from examples/%s; copy the file into the guide", b.line, path)
		}
	}
	if n == 0 {
		t.Error("docs/pipelines.md shows no pipeline")
	}
}

type block struct {
	line int
	text string
}

// yamlBlocks returns the ```yaml fenced blocks of a Markdown file.
func yamlBlocks(md []byte) []block {
	var out []block
	var cur *block
	var buf strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &block{line: ln + 1}
			buf.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = buf.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
	}
	return out
}
