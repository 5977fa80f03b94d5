#!/usr/bin/env bash
# Run the test suite: unit and physics tests, the smoke pipeline (run_all.sh, executing every
# notebook once with papermill), and nbval's comparison of those executed notebooks with the
# committed outputs (tests/test_pipeline.py, tests/nbcompare.py: no second execution), on two
# worker processes.
# Creates .venv on first use (scripts/bootstrap.sh). Extra arguments go to pytest; pytest's exit
# status is this script's, so a run that collects no tests (status 5) fails too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source "$here/scripts/bootstrap.sh"
export TQDM_DISABLE=1 PYTHONHASHSEED=0
# two workers (pytest-xdist), each test file on one of them: the smoke pipeline beside the other tests
# (EMULSION_TEST_WORKERS=0 runs everything in this process)
exec python -m pytest -n "${EMULSION_TEST_WORKERS:-2}" --dist loadfile --durations=8 tests "$@"
