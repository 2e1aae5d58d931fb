#!/usr/bin/env bash
# demo.sh: checkpoint a counting shell loop and restore it, step by step.
# Needs root. Used by `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ -t 1 ]; then
	bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	bold() { printf '\n== %s\n' "$*"; }
fi
die() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (mmcr needs ptrace and pid control): sudo make demo"

bold "Building mmcr into ./bin/mmcr"
go build -o bin/mmcr ./cmd/mmcr
mmcr="$repo/bin/mmcr"

work=$(mktemp -d /tmp/mmcr-demo.XXXXXX)
pids=()
cleanup() {
	# Kill whatever is left of the loop, by pid, then remove the temp dir.
	for p in "${pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# tree PID: the pid and its children (the loop's current `sleep 1`).
tree() { echo "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); }

# Close any fd above 2 this script inherited (an editor's or CI's pipe):
# the counter would inherit it, and mmcr does not dump pipes.
for fd in $(ls /proc/$$/fd); do
	[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
done

bold "Starting a counter in its own session (output goes to $work/log)"
setsid bash -c 'i=0; while :; do echo $i; i=$((i+1)); sleep 1; done' </dev/null >log 2>&1 &
pid=$!
disown "$pid" # no "Killed" job notice when dump kills it
pids=("$pid")
echo "counter pid: $pid"
sleep 3.5
echo "log so far: $(tr '\n' ' ' <log)"

bold "Dumping it: mmcr dump -t $pid -D img"
pids=($(tree "$pid"))
"$mmcr" dump -t "$pid" -D img -v --log-file dump.log || die "dump failed (log: see above; dump.log in $work)"
for p in "${pids[@]}"; do
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
	kill -0 "$p" 2>/dev/null && die "pid $p still exists 10s after the dump"
done
echo "the tree (${pids[*]}) is gone; its pids are free again"
echo "log stopped at: $(tail -n1 log)"
echo "image: $(ls img | tr '\n' ' ')"

bold "What the image holds: mmcr show -D img"
"$mmcr" show -D img >show.txt || die "show failed"
head -n 30 show.txt
echo "... ($(wc -l <show.txt) lines in all: every VMA of both tasks, every mapped file)"

bold "Restoring it: mmcr restore -D img -d"
sleep 2
echo "(two seconds later the log still ends at $(tail -n1 log))"
"$mmcr" restore -D img -d --pidfile restored.pid -v --log-file restore.log || die "restore failed"
rpid=$(cat restored.pid)
echo "restored root pid: $rpid (was $pid)"
pids=($(tree "$rpid"))
sleep 3.5
echo "log now: $(tr '\n' ' ' <log)"
echo "the counter went on from where it was dumped"

pids=($(tree "$rpid"))
bold "Stopping it (kill -9 ${pids[*]}) and cleaning up $work"
for p in "${pids[@]}"; do
	kill -9 "$p" 2>/dev/null || true
done
echo "done: the restored counter is stopped and the demo's files are removed"
