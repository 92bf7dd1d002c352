package link

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// appliedStore keeps the values this node applied, by key, in
// <dir>/applied.json (temp file, fsync, rename, dir fsync), so that a
// restarted edge runs its last plans before (or without) reaching the hub.
// An empty dir keeps it in memory.
type appliedStore struct {
	dir string
	mu  sync.Mutex
	m   map[string]appliedEntry
}

// appliedEntry is one applied value: the envelope exactly as read from the
// bucket, and its revision.
type appliedEntry struct {
	Revision uint64          `json:"revision"`
	Value    json.RawMessage `json:"value"`
}

func openAppliedStore(dir string) (*appliedStore, error) {
	s := &appliedStore{dir: dir, m: map[string]appliedEntry{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("link: data dir: %w", err)
	}
	b, err := os.ReadFile(s.path())
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("link: reading the applied set: %w", err)
	}
	if err := json.Unmarshal(b, &s.m); err != nil {
		return nil, fmt.Errorf("link: the applied set %s is corrupt (%v): move it away to start from what the hub sends", s.path(), err)
	}
	return s, nil
}

func (s *appliedStore) path() string { return filepath.Join(s.dir, "applied.json") }

// entries returns the stored entries sorted by key.
func (s *appliedStore) entries() ([]string, map[string]appliedEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	m := make(map[string]appliedEntry, len(s.m))
	for k, v := range s.m {
		keys = append(keys, k)
		m[k] = v
	}
	sort.Strings(keys)
	return keys, m
}

func (s *appliedStore) get(key string) (appliedEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	return e, ok
}

// put records (or, with value nil, forgets) key and saves the set.
func (s *appliedStore) put(key string, rev uint64, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == nil {
		delete(s.m, key)
	} else {
		s.m[key] = appliedEntry{Revision: rev, Value: append(json.RawMessage(nil), value...)}
	}
	return s.saveLocked()
}

func (s *appliedStore) saveLocked() error {
	if s.dir == "" {
		return nil
	}
	b, err := json.Marshal(s.m)
	if err != nil {
		return err
	}
	tmp := s.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("link: saving the applied set: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("link: saving the applied set: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("link: saving the applied set: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("link: saving the applied set: %w", err)
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
