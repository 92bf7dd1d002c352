package twin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestPersistence(t *testing.T) {
	for _, sc := range []struct {
		name      string
		file      bool
		snapEvery int
	}{
		{"mem", false, 0}, {"file", true, 0}, {"file-compact-every-2", true, 2},
	} {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			mem := NewMemStore()
			open := func(t *testing.T) Store {
				if !sc.file {
					return mem
				}
				s, err := OpenFileStore(dir, FileStoreOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			snapEvery := sc.snapEvery
			ctx := context.Background()
			r := newRig(t, open(t))
			r.m.opts.SnapshotEvery = snapEvery
			r.setup(t)
			for _, p := range []string{
				`{"twin":{"temperature":{"actual":{"value":"25"}}}}`,
				`{"twin":{"temperature":{"actual":{"value":"26"}},"mode":{"expected":{"value":"eco"}}}}`,
				`{"twin":{"blob":{"actual":{"value":{"a":[1,2]}}}}}`,
			} {
				if err := r.m.HandleMessage(ctx, updTopic, []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.m.HandleMessage(ctx, "$hw/events/device/default/thermo-1/state/update", []byte(`{"state":"online"}`)); err != nil {
				t.Fatal(err)
			}
			r.pub.take()
			if err := r.m.HandleMessage(ctx, getTopic, []byte(`{"event_id":"g"}`)); err != nil {
				t.Fatal(err)
			}
			before := r.pub.take()[getResult]
			beforeStats := r.m.Stats()
			if err := r.m.Close(); err != nil {
				t.Fatal(err)
			}

			r2 := newRig(t, open(t))
			defer r2.m.Close()
			if err := r2.m.HandleMessage(ctx, getTopic, []byte(`{"event_id":"g"}`)); err != nil {
				t.Fatal(err)
			}
			if after := r2.pub.take()[getResult]; after != before {
				t.Fatalf("state differs after reopen\nbefore %s\nafter  %s", before, after)
			}
			if st := r2.m.Stats(); st.Devices != beforeStats.Devices || st.Twins != beforeStats.Twins || st.UndeclaredTwins != beforeStats.UndeclaredTwins {
				t.Fatalf("stats %+v, want %+v", st, beforeStats)
			}
			// Versions survived: the next report is edge version 3, and a
			// replay of version 1 is still rejected.
			if err := r2.m.HandleMessage(ctx, updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"27"}}}}`)); err != nil {
				t.Fatal(err)
			}
			if g := r2.pub.take()[resTopic]; !contains(g, `"actual_version":{"cloud":0,"edge":3}`) {
				t.Fatalf("version not persisted: %s", g)
			}
			if err := r2.m.HandleMessage(ctx, updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"25"},"actual_version":{"cloud":0,"edge":1}}}}`)); err == nil {
				t.Fatal("replay after restart accepted")
			}
			dst := map[string]any{}
			r2.m.Values(dev, nil, dst)
			if dst["twin_temperature"] != int64(27) || dst["twin_mode"] != "eco" {
				t.Fatalf("Values after reopen = %v", dst)
			}
			if b, ok := dst["twin_blob"].(map[string]any); !ok || len(b["a"].([]any)) != 2 {
				t.Fatalf("object value after reopen = %#v", dst["twin_blob"])
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestFileStoreTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		{Op: OpPutDevice, Device: &DeviceRecord{ID: "a/b"}},
		{Op: OpPutTwin, ID: "a/b", Prop: "p", Twin: &TwinRecord{Actual: &ValueRecord{Value: []byte(`"1"`)}, Rev: 1}},
	}
	if err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, logFile)
	good, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"torn header", []byte{9, 0}},
		{"torn payload", []byte{50, 0, 0, 0, 1, 2, 3, 4, '{'}},
		{"bad crc", []byte{2, 0, 0, 0, 1, 2, 3, 4, '{', '}'}},
		{"zeros", make([]byte, 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, append(append([]byte(nil), good...), tc.tail...), 0o640); err != nil {
				t.Fatal(err)
			}
			s, _ := OpenFileStore(dir, FileStoreOptions{})
			devs, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != 1 || string(devs[0].Twins["p"].Actual.Value) != `"1"` {
				t.Fatalf("loaded %+v", devs)
			}
			// The tail was cut: a new append lands after the good records.
			if err := s.Append([]Record{{Op: OpDelTwin, ID: "a/b", Prop: "p"}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s, _ = OpenFileStore(dir, FileStoreOptions{})
			devs, _ = s.Load()
			s.Close()
			if len(devs) != 1 || len(devs[0].Twins) != 0 {
				t.Fatalf("append after repair lost: %+v", devs[0])
			}
		})
	}
}

func TestFileStoreBadSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, snapshotFile), []byte("{not json"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, _ := OpenFileStore(dir, FileStoreOptions{})
	if _, err := s.Load(); err == nil || !contains(err.Error(), "move it away") {
		t.Fatalf("err = %v", err)
	}
	if _, err := OpenFileStore("", FileStoreOptions{}); err == nil {
		t.Fatal("empty dir accepted")
	}
}
