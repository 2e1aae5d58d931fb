package procfs

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mmcr/mmcr/internal/kernel"
)

// PROCMAP_QUERY and the maps text must describe the same VMAs. The test
// process changes its own mappings while Go runs, so compare a helper child.
func TestMapsByQueryMatchesMaps(t *testing.T) {
	pid := startHelper(t)
	for _, forced := range []bool{false, true} {
		prev := kernel.ForceProcmapFallback(forced)
		got, err := Default.MapsByQuery(pid)
		kernel.ForceProcmapFallback(prev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Default.Maps(pid)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(want); n > 0 && want[n-1].Path == "[vsyscall]" {
			want = want[:n-1]
		}
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("forced=%v: vma %d:\n query %+v\n maps  %+v", forced, i, got[i], want[i])
				}
			}
			t.Fatalf("forced=%v: %d vmas by query, %d in maps", forced, len(got), len(want))
		}
		m, err := Default.MappingAt(pid, want[0].Start+1)
		if err != nil || !reflect.DeepEqual(m, want[0]) {
			t.Errorf("forced=%v: MappingAt %+v %v", forced, m, err)
		}
		if len(want) > 1 {
			m, err = Default.MappingAt(pid, want[0].End)
			if err != nil || m.Start != want[1].Start {
				t.Errorf("forced=%v: next mapping %+v %v", forced, m, err)
			}
		}
		if _, err := Default.MappingAt(pid, ^uint64(0)-4095); !errors.Is(err, ErrNoMapping) {
			t.Errorf("forced=%v: above all: %v", forced, err)
		}
	}
}
