package file

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// Confine resolves the path of a file sink and checks that it lies inside
// one of dirs, the directories file sinks may write in (an edge runner's
// data dir and the allow-list of its config): whoever may change pipelines
// (an admin API token) must not be able to create or append to any file
// the process can reach. A relative path is taken relative to dirs[0].
// Symbolic links are resolved, in the path and in dirs, so a link inside
// an allowed directory cannot lead out of it. It returns the path to open.
func Confine(path string, dirs []string) (string, error) {
	if len(dirs) == 0 {
		return "", fmt.Errorf("file sink %q: file sinks are confined and no directory allows them; set dataDir or fileSinkDirs in the edge config", path)
	}
	if path == "" {
		return "", errors.New("file sink: the path is empty")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dirs[0], path)
	}
	real, err := resolve(filepath.Clean(path))
	if err != nil {
		return "", fmt.Errorf("file sink %q: %w", path, err)
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		rd, err := resolve(filepath.Clean(abs))
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(rd, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "." {
			return path, nil
		}
	}
	return "", fmt.Errorf("file sink %q is outside the directories file sinks may write in (%s); write under the data dir or add its directory to fileSinkDirs in the edge config",
		path, strings.Join(dirs, ", "))
}

// resolve evaluates the symbolic links of the longest existing prefix of
// an absolute, clean path and appends the rest.
func resolve(p string) (string, error) {
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
