package budget

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "512M": 512 << 20, "1GiB": 1 << 30, "1.5G": 3 << 29,
		"67108864": 67108864, " 32 MiB ": 32 << 20, "100kb": 100 << 10, "2048B": 2048} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "64 furlongs", "-1M", "1e3M", "64MiBs"} {
		if n, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", bad, n)
		}
	}
}

func TestFor(t *testing.T) {
	def, err := For(0)
	if err != nil {
		t.Fatal(err)
	}
	want := Sizes{Limit: 64 << 20, GoLimit: 48 << 20, WALSegmentSize: 1 << 20, WALSegmentCache: 2, WALCacheBytes: 2 << 20,
		WALCacheRecords: 4096, WALAsyncQueue: 16384, BrokerPendingWrites: 4096}
	if def != want {
		t.Errorf("For(0) = %+v\nwant     %+v", def, want)
	}
	big, _ := For(1 << 30)
	if big.WALCacheBytes != 16<<20 || big.WALSegmentSize != 8<<20 || big.WALSegmentCache != 2 || big.WALAsyncQueue != 65536 || big.BrokerPendingWrites != 8192 {
		t.Errorf("For(1GiB) = %+v: want the sizes from before budgets", big)
	}
	if l32, _ := For(32 << 20); l32.GoLimit != 16<<20 {
		t.Errorf("For(32MiB).GoLimit = %d, want 16MiB", l32.GoLimit)
	}
	small, _ := For(Min)
	if small.GoLimit != Min/2 {
		t.Errorf("For(Min).GoLimit = %d, want half", small.GoLimit)
	}
	if small.WALCacheBytes != 1<<20 || small.WALSegmentSize != 1<<20 || small.WALAsyncQueue != 6144 || small.BrokerPendingWrites != 2048 {
		t.Errorf("For(Min) = %+v", small)
	}
	if _, err := For(16 << 20); err == nil || err.Error() != "memory limit 16MiB is below the minimum 24MiB; give at least 24MiB" {
		t.Errorf("For(16MiB) error = %v", err)
	}
}
