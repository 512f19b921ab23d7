#!/usr/bin/env bash
# Runs every fuzz target briefly: bash scripts/fuzz.sh [DURATION] (default 3s).
# A crash the fuzzer finds is written under testdata/fuzz/ and fails the run;
# rerun it with: go test ./PKG -run 'FuzzName/HASH'. A run that fails without
# writing an input is the fuzzing engine itself (it can stall on a loaded
# machine): that target is tried again, up to three times.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-3s}"
status=0
log=$(mktemp)
for pkg in ./policy ./vault; do
  for target in $(go test "$pkg" -list '^Fuzz' | grep '^Fuzz' || true); do
    for attempt in 1 2 3; do
      if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time" >"$log" 2>&1; then
        echo "fuzz: $pkg $target ok ($time)"
        break
      fi
      if grep -q 'Failing input written to' "$log"; then
        echo "fuzz: $pkg $target FOUND A FAILURE:"; cat "$log"; status=1; break
      fi
      echo "fuzz: $pkg $target: the engine failed without an input (attempt $attempt); output:"; tail -n 5 "$log"
      if [ "$attempt" = 3 ]; then status=1; fi
    done
  done
done
rm -f "$log"
exit $status
