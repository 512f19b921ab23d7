#!/usr/bin/env bash
# Runs every fuzz target briefly: bash scripts/fuzz.sh [DURATION] (default 3s).
# A crash the fuzzer finds is written under testdata/fuzz/ and fails the run;
# rerun it with: go test ./PKG -run 'FuzzName/HASH'.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-3s}"
status=0
for pkg in ./policy ./vault; do
  for target in $(go test "$pkg" -list '^Fuzz' | grep '^Fuzz' || true); do
    for attempt in 1 2; do
      before=$(git status --porcelain --untracked-files=all -- "$pkg/testdata/fuzz" 2>/dev/null | wc -l)
      if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time" >/tmp/pdvault-fuzz.log 2>&1; then
        echo "fuzz: $pkg $target ok ($time)"
        break
      fi
      after=$(git status --porcelain --untracked-files=all -- "$pkg/testdata/fuzz" 2>/dev/null | wc -l)
      if [ "$after" -gt "$before" ] || grep -q -- '--- FAIL' /tmp/pdvault-fuzz.log; then
        echo "fuzz: $pkg $target FOUND A FAILURE:"; cat /tmp/pdvault-fuzz.log; status=1; break
      fi
      # The fuzzing engine itself can stall on a loaded machine: try once more.
      if [ "$attempt" = 2 ]; then echo "fuzz: $pkg $target did not complete:"; cat /tmp/pdvault-fuzz.log; status=1; fi
    done
  done
done
exit $status
