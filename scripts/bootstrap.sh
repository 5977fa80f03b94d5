#!/usr/bin/env bash
# Create .venv (if missing or stale) and install emulsion-dl with its notebook and test extras.
# Sourced by run_all.sh and run_tests.sh; idempotent and quick when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EMULSION_VENV:-$root/.venv}"
stamp="$venv/.emulsion-dl-installed"
if [ ! -x "$venv/bin/python" ]; then
    echo "[bootstrap] creating virtual environment in $venv"
    python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "[bootstrap] installing emulsion-dl and its dependencies (first time: a few minutes)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$root[notebooks,test]"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
