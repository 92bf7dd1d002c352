package runner

import "testing"

func TestMemoryTrimmerTrimsOncePerBurst(t *testing.T) {
	var off uint64
	tr := &memoryTrimmer{last: func() uint64 { return off }}
	freed, dropped := 0, 0
	tr.free = func() { freed++ }
	tr.drop = func() { dropped++ }
	steps := []struct {
		append uint64
		want   int
	}{
		{0, 0}, // idle from the start: nothing to give back
		{5, 0}, // busy
		{7, 0}, // still busy
		{0, 1}, // quiet after busy: trim
		{0, 1}, // still quiet: no second trim
		{1, 1}, // busy again
		{0, 2}, // quiet: trim
	}
	for i, s := range steps {
		off += s.append
		tr.check()
		if freed != s.want || dropped != s.want {
			t.Fatalf("step %d: %d trims, %d cache drops; want %d", i, freed, dropped, s.want)
		}
	}
}
