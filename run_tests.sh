#!/usr/bin/env bash
# Run the test suite: unit and physics tests, the smoke pipeline (run_all.sh), and nbval
# re-execution of the committed notebooks against their stored smoke outputs.
# Creates .venv on first use (scripts/bootstrap.sh). Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source "$here/scripts/bootstrap.sh"
export TQDM_DISABLE=1 PYTHONHASHSEED=0
exec python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout=1200 --durations=8 tests notebooks "$@"
