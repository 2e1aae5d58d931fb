// Package e2e holds mmcr's end-to-end suite: C workloads in testdata/ that
// build their own state, wait for SIGTERM and then verify every byte of it,
// driven by go test through dump and restore with the real mmcr binary.
//
// Each scenario runs twice: "baseline" (no checkpoint: proves the workload
// and its verdict) and "checkpoint" (dump, check the tree is gone, restore,
// compare /proc/PID/maps of every task, then SIGTERM and read the verdict).
// Run as root; MMCR_E2E_NOCR=1 runs only the baselines, MMCR_E2E_KEEP=1
// keeps each scenario's temp dir (images, logs, workload output), and
// MMCR_E2E_MMCR=/path/to/mmcr uses a prebuilt binary instead of building one.
package e2e
