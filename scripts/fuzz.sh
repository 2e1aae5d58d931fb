#!/usr/bin/env bash
# fuzz.sh FUZZTIME: run every Fuzz* function of every package (test/e2e has
# none and would build its workloads just to be listed) for FUZZTIME each.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime runs out while a worker is mid-call
# (go.dev/issue/75804, fixed in Go 1.27): nothing was found and no input was
# written. Such a run is repeated once; a real finding (a failing input
# written to testdata/fuzz, a panic, any other error) fails at once, and so
# does the same bare deadline twice in a row.
set -euo pipefail
fuzztime=${1:?usage: fuzz.sh FUZZTIME}
go=${GO:-go}

# run_target PKG FUNC: 0 passed, 1 failed, 2 deadline flake.
run_target() {
	local log rc=0
	log=$(mktemp)
	"$go" test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$log" || rc=$?
	if [ "$rc" -eq 0 ]; then
		rm -f "$log"
		return 0
	fi
	if grep -q 'context deadline exceeded' "$log" &&
		! grep -Eq 'Failing input written|panic:|^ +[a-z_]+_test\.go:[0-9]+:' "$log"; then
		rm -f "$log"
		return 2
	fi
	rm -f "$log"
	return 1
}

for pkg in $("$go" list ./... | grep -v '/test/e2e$'); do
	for f in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $f for $fuzztime"
		rc=0
		run_target "$pkg" "$f" || rc=$?
		if [ "$rc" -eq 2 ]; then
			echo "fuzz: $f stopped on Go's fuzztime deadline race (go.dev/issue/75804), nothing found; once more"
			rc=0
			run_target "$pkg" "$f" || rc=$?
		fi
		if [ "$rc" -ne 0 ]; then
			echo "fuzz: $pkg $f failed" >&2
			exit 1
		fi
	done
done
