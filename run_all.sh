#!/usr/bin/env bash
# Regenerate every figure and table: prepare the profile's dataset (simulate it, or check the given
# scans in its folder), run the notebooks in order with papermill, render each to HTML, and write
# reports/<profile>/index.html.
#
#   ./run_all.sh [--profile smoke|default|paper|FILE.yaml] [--output DIR] [--notebooks 01,02]
#                [--notebook-dir DIR] [--cluster none|local:N|tcp://HOST:PORT|slurm|htcondor]
#
# --output DIR puts data/, results/, figures/ and reports/ under DIR instead of this checkout.
# --notebooks runs only the notebooks whose names start with one of the comma-separated prefixes.
# --notebook-dir DIR runs the NN_*.ipynb of DIR instead of notebooks/ (the tests use it).
# --cluster where the simulation and the search run (emulsion_core/app/cluster.py; default the profile's
#   cluster.where, else none: this machine); local:N starts a Dask LocalCluster of N workers per step.
# Every notebook gets the profile file itself (parameter `profile` = its absolute path).
# A notebook whose kernel dies (a crash in native code) stops the run within seconds.
# The first run creates .venv and installs the suite (scripts/bootstrap.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
profile=default
output=""
only=""
notebooks_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --output) output="$2"; shift 2 ;;
        --output=*) output="${1#*=}"; shift ;;
        --cluster) export EMULSION_DL_CLUSTER="$2"; shift 2 ;;
        --cluster=*) export EMULSION_DL_CLUSTER="${1#*=}"; shift ;;
        --notebooks) only="$2"; shift 2 ;;
        --notebooks=*) only="${1#*=}"; shift ;;
        --notebook-dir) notebooks_dir="$2"; shift 2 ;;
        --notebook-dir=*) notebooks_dir="${1#*=}"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$notebooks_dir" ]; then notebooks_dir="$(cd "$notebooks_dir" && pwd)"; else notebooks_dir="$here/notebooks"; fi
cd "$here"
source "$here/scripts/bootstrap.sh"
if [ -n "$output" ]; then
    mkdir -p "$output"
    export EMULSION_DL_ROOT="$(cd "$output" && pwd)"
fi
export PYTHONHASHSEED=0
profile_file="$profile"
[ -f "$profile_file" ] || profile_file="$here/emulsion_core/profiles/$profile.yaml"
[ -f "$profile_file" ] || { echo "run_all.sh: no profile '$profile' (emulsion_core/profiles/*.yaml or a YAML path)" >&2; exit 2; }
# the notebooks run in notebooks/: give them the file by its absolute path
profile_file="$(cd "$(dirname "$profile_file")" && pwd)/$(basename "$profile_file")"
name="$(python -c "import sys; from emulsion_core.config import profiles; print(profiles.load(sys.argv[1]).name)" "$profile_file")"
root="${EMULSION_DL_ROOT:-$here}"
reports="$root/reports/$name"
mkdir -p "$reports"
echo "== emulsion-dl: profile $name, outputs under $root"

start=$(date +%s)
# TensorFlow's oneDNN convolutions crash on some CPUs (emulsion_core/networks/onednn_guard.py): a self-test,
# once per machine (cached), before any kernel imports TensorFlow; where it dies, all run with oneDNN off
onednn="$(python -m emulsion_core onednn)"
export EMULSION_ONEDNN_GUARD="$onednn"
[ "$onednn" = on ] || export TF_ENABLE_ONEDNN_OPTS=0
python -m emulsion_core prepare --profile "$profile_file"

# the notebooks in order, each with papermill in its own kernel, driven from one process
# (emulsion_core/app/notebooks.py); a failed one stops the run with its error; then every report
# rendered to HTML (without its code) and reports/<profile>/index.html written
python -m emulsion_core notebooks --profile "$profile_file" --notebook-dir "$notebooks_dir" ${only:+--only "$only"}
echo "== done in $(( $(date +%s) - start )) s: open $reports/index.html"
