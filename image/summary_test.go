package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSummary(t *testing.T) {
	dir, _ := writeSample(t)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if s.Totals.Tasks != 2 || s.Totals.Threads != 4 || s.Totals.PrivatePages != 21 || s.Totals.SharedPages != 2 {
		t.Errorf("totals %+v", s.Totals)
	}
	v := s.Tasks[0].VMAs[1]
	if v.Pages != 2 || v.Perms != "rw-p" || v.Path != "/usr/bin/prog" || v.Dev != "08:03" || v.Ino != 12345 {
		t.Errorf("vma %+v", v)
	}
	if s.Tasks[0].VMAs[3].ShmPages != 2 || s.Tasks[1].VMAs[0].ShmPages != 1 {
		t.Errorf("shm pages in window: %d, %d", s.Tasks[0].VMAs[3].ShmPages, s.Tasks[1].VMAs[0].ShmPages)
	}
	if s.Tasks[1].Depth != 1 {
		t.Errorf("child depth %d", s.Tasks[1].Depth)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"2 tasks, 4 threads",
		"00401000-00403000 rw-p 00001000 08:03 12345",
		"private-file file 1 /usr/bin/prog pages 2 (8.0 KiB)",
		"shm 1 (2 pages in window)", "vvar_vclock", "memfd:my memfd", "(deleted)",
		"    102 child (ppid 100, pgid 100, sid 90, stopped)", // stopped at dump
		"fd 3: regular file 2 /tmp/deleted file flags 02000002 pos 1234",
		"fd 1: external (pipe) flags 02001 pos 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(js, &back); err != nil || back.Totals != s.Totals {
		t.Fatalf("json round trip: %v", err)
	}
	if testing.Verbose() {
		t.Log("\n" + out)
	}
}

// TestSummaryPolicies: show names a range's memory policy, a task's
// membarrier registrations, a memfd's mode, owner and seals, what a pidfd
// and a signalfd hold.
func TestSummaryPolicies(t *testing.T) {
	tree := sampleTree()
	tree.Tasks[0].VMAs[1].MemPolicy = &MemPolicy{Mode: 2, Nodes: []uint64{1}}
	tree.Tasks[1].Mm.Membarrier = 1 << 4
	so := tree.SharedObjects[1]
	so.Seals, so.Mode, so.UID, so.GID = 0xa, 0o600, 7, 8
	tree.Tasks[0].FDs = append(tree.Tasks[0].FDs, &FD{Num: 30, Kind: FDPidfd, Flags: unix.O_RDWR, PidfdPID: tree.Tasks[1].PID},
		&FD{Num: 31, Kind: FDSignalfd, Flags: unix.O_RDWR, Signalfd: &Signalfd{Mask: 0x4200}})
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := openTree(t, dir)
	s, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy bind:0 pages", "membarrier registrations 0x10", "mode 0600 owner 7:8 seals 0xa",
		fmt.Sprintf("fd 30: pidfd of pid %d", tree.Tasks[1].PID), "fd 31: signalfd mask 0x4200"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, buf.String())
		}
	}
}
