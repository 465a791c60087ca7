#!/usr/bin/env bash
# Builds (scripts/setup.sh), runs the unit suite then the integration suite, and prints one
# line "N passed, N failed[, N skipped]". Exits non-zero if anything failed.
# The integration tests need root; without it they are reported as skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=build
TESTLOG=$BUILD_DIR/meson-logs/testlog.json

scripts/setup.sh

passed=0 failed=0 skipped=0 rc=0

# Counts the results of the last `meson test` run (one JSON object per line in testlog.json).
count_results() {
    [[ -f $TESTLOG ]] || { echo "0 0 0"; return; }
    python3 - "$TESTLOG" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        if not line.strip():
            continue
        try:
            result = json.loads(line).get("result", "")
        except ValueError:
            print(f"test.sh: unreadable line in {sys.argv[1]} (another `meson test` writing "
                  "the same build dir?): counted as a failure", file=sys.stderr)
            result = "ERROR"
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, ...
            failed += 1
print(passed, failed, skipped)
PY
}

for suite in unit integration; do
    echo "=== $suite tests ==="
    rm -f "$TESTLOG"
    suite_rc=0
    meson test -C "$BUILD_DIR" --print-errorlogs --suite "$suite" || suite_rc=$?
    p=0 f=0 s=0
    read -r p f s < <(count_results) || true
    [[ $p$f$s =~ ^[0-9]+$ ]] || { echo "test.sh: cannot read $TESTLOG" >&2; p=0 f=1 s=0; }
    # A meson failure with no failed test in the log (e.g. a build error) still counts.
    if ((suite_rc != 0 && f == 0)); then
        echo "test.sh: meson test --suite $suite exited with $suite_rc" >&2
        f=1
    fi
    ((passed += p, failed += f, skipped += s)) || true
    ((suite_rc == 0)) || rc=1
done

summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0 && rc == 0))
