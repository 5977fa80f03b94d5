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

durations=()
notebooks=()
for nb in "$notebooks_dir"/[0-9][0-9]_*.ipynb; do
    base="$(basename "$nb" .ipynb)"
    if [ -n "$only" ]; then
        wanted=0
        for prefix in ${only//,/ }; do [[ "$base" == "$prefix"* ]] && wanted=1; done
        [ "$wanted" = 1 ] || continue
    fi
    echo "== $base"
    t0=$(date +%s)
    # progress bars belong in the terminal and JupyterLab, not in the rendered reports
    if ! TQDM_DISABLE=1 papermill "$nb" "$reports/$base.ipynb" -p profile "$profile_file" -k python3 --cwd "$notebooks_dir" \
            --no-progress-bar --log-level WARNING > "$reports/$base.log" 2>&1; then
        if grep -q DeadKernelError "$reports/$base.log"; then
            echo "run_all.sh: the kernel of notebook $base died (a crash in native code; if TensorFlow's, see" \
                 "emulsion_core/networks/onednn_guard.py and try TF_ENABLE_ONEDNN_OPTS=0)" >&2
        fi
        echo "run_all.sh: notebook $base failed; its error:" >&2
        python - "$reports/$base.ipynb" <<'PY' >&2 || tail -n 30 "$reports/$base.log" >&2
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
for cell in nb.cells:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            print(f"  {out['ename']}: {out['evalue']}")
            print("  in cell:\n    " + cell.source.replace("\n", "\n    "))
            raise SystemExit(0)
raise SystemExit(1)
PY
        echo "(executed notebook: $reports/$base.ipynb, log: $reports/$base.log)" >&2
        # the notebooks that ran, and the failed one as far as it got, rendered and listed
        python -m emulsion_core report --profile "$profile_file" ${durations[@]+"${durations[@]}"} \
            ${notebooks[@]+"${notebooks[@]}"} "$base" > /dev/null 2>&1 || true
        exit 1
    fi
    notebooks+=("$base")
    durations+=(--duration "$base=$(( $(date +%s) - t0 ))")
done
# every report rendered to HTML (without its code) in one process, and the index written
python -m emulsion_core report --profile "$profile_file" "${durations[@]}" "${notebooks[@]}"
echo "== done in $(( $(date +%s) - start )) s: open $reports/index.html"
