#!/usr/bin/env bash
# Runs every fuzz target of the module (bench/ is its own module) for
# FUZZTIME each (default 30s): go test -fuzz takes one target per run. A
# crasher is written to testdata/fuzz/<Target>/ of its package: fix the
# cause and commit the file; plain "go test" then runs it as a regression
# test. docs/hardening.md lists what each target checks.
#
# With a time budget, go's fuzzing coordinator sometimes ends a run with
# "context deadline exceeded" and no crasher when the budget runs out while
# a worker is mid-input (seen at 5s in CI with FuzzDiagnose, FuzzParseHash
# and others, about once per full run). That is not a finding: such a run
# is retried, up to twice (one retry left CI a few per cent likely to fail
# on two in a row), and a third one fails like any other failure. A run
# that wrote a crasher is never retried.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

# crashers counts the inputs saved for target $2 of package dir $1.
crashers() {
  if [[ -d $1/testdata/fuzz/$2 ]]; then find "$1/testdata/fuzz/$2" -type f | wc -l; else echo 0; fi
}

dirs=$(grep -rl --include='*_test.go' '^func Fuzz' . --exclude-dir=bench --exclude-dir=.tools --exclude-dir=.git |
  xargs -n1 dirname | sort -u)
for d in $dirs; do
  for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$d"/*_test.go); do
    for attempt in 1 2 3; do
      echo "fuzz $d $name for $FUZZTIME"
      before=$(crashers "$d" "$name")
      out=$(mktemp)
      if "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$d" 2>&1 | tee "$out"; then
        rm -f "$out"
        break
      fi
      after=$(crashers "$d" "$name")
      if ((attempt < 3 && after == before)) && grep -q 'context deadline exceeded' "$out"; then
        echo "fuzz $d $name: the time budget ended mid-input (no crasher written); once more"
        rm -f "$out"
        continue
      fi
      rm -f "$out"
      exit 1
    done
  done
done
