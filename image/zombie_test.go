package image

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"golang.org/x/sys/unix"
)

// zombieTree is the sample tree with two zombie children of its root: one
// exited with 7, one killed by SIGKILL.
func zombieTree() *Tree {
	tree := sampleTree()
	for _, z := range []struct {
		pid, status int
		comm        string
	}{{103, 7 << 8, "gone"}, {104, int(unix.SIGKILL), "killed"}} {
		tree.Tasks = append(tree.Tasks, &Task{PID: z.pid, PPID: 100, PGID: 100, SID: 90, Comm: z.comm,
			Zombie: true, ExitStatus: z.status, Threads: []*Thread{{TID: z.pid}}})
	}
	return tree
}

// A zombie is written as CRIU writes one (a core with task_state
// TASK_DEAD and the exit status, no mm, fs, fdinfo or pagemap) and read
// back as it was; mmcr show says how it ended.
func TestZombieRoundTrip(t *testing.T) {
	want := zombieTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mm-103.img", "fs-103.img", "fdinfo-103.img", "pagemap-103.img", "ids-103.img"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written for a zombie", name)
		}
	}
	core := critDecode(t, dir, "core-103.img", &criu_core.CoreEntry{}).Entries[0].Message.(*criu_core.CoreEntry)
	if core.GetTc().GetTaskState() != taskDead || core.GetTc().GetExitCode() != 7<<8 || core.GetTc().GetComm() != "gone" {
		t.Errorf("zombie core as crit sees it: %v", core)
	}
	if ext, _ := os.ReadFile(filepath.Join(dir, ExtName)); !strings.Contains(string(ext), `"version": 6`) {
		t.Errorf("%s of a tree with zombies is not version 6", ExtName)
	}
	r, got := openTree(t, dir)
	want.Tasks[0].VMAs[7].VmFlags = nil // empty slices come back nil
	for i := range want.Tasks {
		if !reflect.DeepEqual(got.Tasks[i], want.Tasks[i]) {
			t.Errorf("task %d differs:\n got %+v\nwant %+v", want.Tasks[i].PID, got.Tasks[i], want.Tasks[i])
		}
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"103 gone (ppid 100, pgid 100, sid 90), zombie: exited with 7",
		"104 killed (ppid 100, pgid 100, sid 90), zombie: killed by signal 9 (killed)"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, text.String())
		}
	}
}

func TestZombieRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"zombie root", func(tr *Tree) {
			tr.Tasks[0] = &Task{PID: 100, Zombie: true, Threads: []*Thread{{TID: 100}}}
			tr.Tasks = tr.Tasks[:1]
		}, "the root is a zombie"},
		{"zombie with memory", func(tr *Tree) { tr.Tasks[2].VMAs = tr.Tasks[1].VMAs }, "zombie 103 has threads, memory"},
		{"zombie parent", func(tr *Tree) { tr.Tasks[1].PPID = 103 }, "its parent 103 is a zombie"},
		{"stopped status", func(tr *Tree) { tr.Tasks[2].ExitStatus = 0x137f }, "exit status 0x137f"},
		{"ignored signal", func(tr *Tree) { tr.Tasks[2].ExitStatus = int(unix.SIGCHLD) }, "neither an exit code nor a fatal signal"},
		{"code too large", func(tr *Tree) { tr.Tasks[2].ExitStatus = 0x10000 }, "exit status 0x10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := zombieTree()
			tc.mangle(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}
