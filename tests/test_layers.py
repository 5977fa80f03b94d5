"""The house rules of emulsion_core, checked: imports run down the layers of pyproject.toml's
import-linter contracts (no cycles, TensorFlow only in ``networks``), the light parts import no
TensorFlow and start no subprocess, modules stay small, and provenance follows the code's own
imports."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "emulsion_core"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts of pyproject.toml on the package found first under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}, no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "emulsion_core", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_import_contracts_hold():
    run = _lint(REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 kept, 0 broken" in run.stdout


@pytest.mark.parametrize("module, line, broken", [
    # the cycle of the flat package: features linked clusters through barshift, which imported features
    ("measure/clusters.py", "def _cycle():\n    from emulsion_core.measure import features\n",
     "No import cycles among the modules of any subpackage BROKEN"),
    ("config/samples.py", "from emulsion_core.storage import paths\n",
     "emulsion_core's subpackages import downwards only BROKEN"),
    ("data/selection.py", "from emulsion_core.simulator import simulate\n",  # data never simulates
     "emulsion_core's subpackages import downwards only BROKEN"),
    ("measure/shape.py", "import tensorflow\n", "Only emulsion_core.networks imports TensorFlow and Keras BROKEN"),
])
def test_an_import_against_the_rules_breaks_a_contract(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    path = root / "emulsion_core" / module
    path.write_text(path.read_text() + "\n\n" + line)
    run = _lint(root)
    assert run.returncode == 1 and broken in run.stdout, run.stdout[-3000:]


LIGHT = """
import subprocess, sys, sysconfig, traceback
started = []
real = subprocess.Popen.__init__
stdlib = sysconfig.get_paths()["stdlib"]
def spy(self, *a, **k):
    # who asked: the innermost caller outside the standard library (h5py's import-time
    # `uname -p` through the platform module is a library's, not ours)
    callers = [f.filename for f in traceback.extract_stack()[:-1] if not f.filename.startswith(stdlib)]
    if callers and "emulsion_core" in callers[-1] and "site-packages" not in callers[-1]:
        started.append((a[0] if a else k.get("args"), callers[-1]))
    real(self, *a, **k)
subprocess.Popen.__init__ = spy
import emulsion_core
from emulsion_core.simulator import simulate, calibrate
from emulsion_core.formats import convert, hdf5, rootio
from emulsion_core.analyses import conventional, table1, audit
from emulsion_core.data import selection
from emulsion_core.app import cli, prepare
try:
    cli.main(["--help"])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print("HEAVY", heavy, "STARTED", started)
"""


def test_the_light_parts_import_no_tensorflow_and_start_no_subprocess():
    run = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "HEAVY [] STARTED []" in run.stdout, run.stdout[-2000:]


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in _modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_a_function_over_60_lines_says_why():
    """A long function's docstring holds a sentence starting "Long:" with the reason."""
    unexplained = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and "Long:" not in (ast.get_docstring(node) or ""):
                    unexplained.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not unexplained, unexplained


KEY = ("import json, sys; from emulsion_core.storage import provenance; "
       "print(json.dumps({a: provenance.key(a)['code'] for a in sys.argv[1:]}))")


def _code_keys(root: Path, *artefacts) -> dict:
    run = subprocess.run([sys.executable, "-c", KEY, *artefacts], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, check=True)
    return json.loads(run.stdout)


def _edit(root: Path, module: str) -> None:
    path = root / "emulsion_core" / module
    path.write_text(path.read_text() + "\n\n_EDITED = 1\n")


def test_provenance_follows_the_fits_own_imports(tmp_path):
    """batchnorm (imported by training) was missing from the hand-kept list: editing it now changes
    the final fit's and the search's keys; the shape analysis, which only the conventional
    variables use, leaves them alone; a docstring edit changes nothing."""
    root = _copy(tmp_path)
    before = _code_keys(root, "final_fit", "search_history", "conventional")
    assert "networks/batchnorm.py" in before["final_fit"] and "measure/shape.py" not in before["final_fit"]
    _edit(root, "networks/batchnorm.py")
    after = _code_keys(root, "final_fit", "search_history", "conventional")
    assert after["final_fit"] != before["final_fit"] and after["search_history"] != before["search_history"]
    assert after["conventional"] == before["conventional"]
    _edit(root, "measure/shape.py")
    shaped = _code_keys(root, "final_fit", "conventional")
    assert shaped["final_fit"] == after["final_fit"] and shaped["conventional"] != after["conventional"]
    shape = root / "emulsion_core" / "measure" / "shape.py"
    shape.write_text(shape.read_text().replace('"""', '"""A docstring edit. ', 1))
    assert _code_keys(root, "conventional")["conventional"] == shaped["conventional"]
