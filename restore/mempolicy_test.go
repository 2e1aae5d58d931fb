package restore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// TestRestoreMemPolicy dumps a parent that interleaves its memory over
// node 0 and a child bound to it, each with policies of its own for
// ranges of memory (mbind; the child's on memory it still shares with the
// parent copy-on-write), and checks each restored task has its own NUMA
// memory policies again.
func TestRestoreMemPolicy(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "mempolicy", "NUMA memory policy")
	d := dumpWorkload(t, false, bin)
	for i, want := range []uint32{unix.MPOL_INTERLEAVE | unix.MPOL_F_STATIC_NODES, unix.MPOL_BIND} {
		p := d.tree.Tasks[i].Threads[0].MemPolicy
		if p == nil || p.Mode != want || len(p.Nodes) != 1 || p.Nodes[0] != 1 {
			t.Errorf("task %d's image: memory policy %+v, want mode %#x nodes [1]", d.tree.Tasks[i].PID, p, want)
		}
	}
	// The ranges with a policy of their own, as dump read them.
	ranged := func(task *image.Task) map[uint32]int {
		modes := map[uint32]int{}
		for _, v := range task.VMAs {
			if v.MemPolicy != nil {
				modes[v.MemPolicy.Mode]++
			}
		}
		return modes
	}
	wantParent := map[uint32]int{unix.MPOL_BIND: 1, unix.MPOL_PREFERRED: 1, unix.MPOL_INTERLEAVE: 1}
	wantChild := map[uint32]int{unix.MPOL_LOCAL: 1, unix.MPOL_PREFERRED: 1, unix.MPOL_INTERLEAVE: 1}
	if got := ranged(d.tree.Tasks[0]); !maps.Equal(got, wantParent) {
		t.Errorf("parent's range policies in the image: %v, want %v", got, wantParent)
	}
	if got := ranged(d.tree.Tasks[1]); !maps.Equal(got, wantChild) {
		t.Errorf("child's range policies in the image: %v, want %v", got, wantChild)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreMemPolicyMissingNode: a range bound to a node this machine
// lacks (the image edited to say node 5) fails the restore, naming the
// range and the policy, and leaves nothing running.
func TestRestoreMemPolicyMissingNode(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "mempolicy", "NUMA memory policy")
	if _, err := os.Stat("/sys/devices/system/node/node5"); err == nil {
		t.Skip("this machine has a node 5")
	}
	d := dumpWorkload(t, false, bin)
	p := filepath.Join(d.dir, image.ExtName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var ext map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&ext); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range ext["tasks"].([]any)[0].(map[string]any)["vmas"].([]any) {
		mp, ok := v.(map[string]any)["mempolicy"].(map[string]any)
		if ok && mp["mode"].(json.Number).String() == strconv.Itoa(unix.MPOL_BIND) {
			mp["nodes"] = []any{1 << 5}
			found = true
		}
	}
	if !found {
		t.Fatal("no range bound with MPOL_BIND in the image")
	}
	out, err := json.Marshal(ext)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	resealManifest(t, d.dir)
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "memory policy (mbind bind:5)") ||
		!strings.Contains(err.Error(), fmt.Sprintf("task %d vma 0x", d.pids[0])) {
		t.Fatalf("restore: %v, want a failure naming the task, the range and its policy", err)
	}
	waitGone(t, d.pids)
}
