// Package e2e holds mmcr's end-to-end suite: C workloads in testdata/ that
// build their own state, wait for SIGTERM and then verify every byte of it,
// driven by go test through dump and restore with the real mmcr binary.
//
// Each scenario runs twice: "baseline" (no checkpoint: proves the workload
// and its verdict, and that its maps are stable) and "checkpoint":
//
//	start (setsid, stdin /dev/null, stdout/stderr to files) → pidfile →
//	snapshot every task (maps, comm, exe, cmdline, ppid/pgid/sid) →
//	mmcr dump -t PID -D img → the tree must be gone (pids reaped) →
//	mmcr restore -D img -d --pidfile F → same pids, same snapshot →
//	SIGTERM → the workload's verdict (./result: PASS or FAIL: reason)
//
// Two scenarios change the checkpoint part: leave-running (the original
// passes after dump --leave-running, then two restores from the same
// images) and bad-images (damaged images and a changed backing file must
// make restore fail with one line and leave nothing running).
//
// # Workload protocol (testdata/common.h)
//
// A workload runs in a private directory, sets up, writes ./pidfile once
// every task of its tree is ready, waits for SIGTERM, verifies, and the
// root writes ./result. Tasks that fork forward SIGTERM and fold their
// children's exit codes into their verdict. Readiness goes through files;
// pipes and socket pairs a workload makes between its own tasks
// (pipeline.c, rpc.c) are part of what is checkpointed. The driver
// compares each task's fds before and after, pipes and sockets named by
// their order of appearance across the tree (a restored one is a new
// inode).
//
// # Adding a scenario
//
// Write testdata/NAME.c on common.h and add one entry to the scenarios
// table (source, arguments, extra gcc flags such as -pthread, mode). The
// driver builds it with gcc -O1 -g in TestMain. A workload may also be a
// Go main package (testdata/DIR, stdlib only, built with go build) or a
// Python script (testdata/NAME.py, run with python3; its scenarios skip
// where there is no python3) following the same protocol (wlproto.py has
// it for those that run one verdict in their main thread). A scenario
// that drives an installed program (pgserver.py: PostgreSQL) names it in
// needs and skips where it is missing.
//
// Each task's identity includes its threads (tid and name): threads come
// back with their own tids and names.
//
// # Knobs
//
// Run as root; without root or gcc the suite skips. MMCR_E2E_NOCR=1 runs
// only the baselines (mmcr is not even built), MMCR_E2E_KEEP=1 keeps each
// subtest's temp dir (images, logs, workload output, maps before/after),
// and MMCR_E2E_MMCR=/path/to/mmcr uses a prebuilt binary.
//
// The test process is a child subreaper and reaps every child at once (pid
// 1 here reaps slowly, and restore needs the dumped pids free); after each
// subtest every process below it is killed by pid.
package e2e
