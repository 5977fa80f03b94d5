"""Compare an executed notebook with the committed one, cell by cell, with nbval's own output
comparison and sanitizers, without executing anything (the pipeline test's run_all.sh has
executed the notebooks once, with papermill).

Semantics as ``pytest --nbval`` had them: code cells tagged ``nbval-ignore-output`` (or
``nbval-skip``) and cells never run in the committed notebook are not compared; stream and
rich outputs are compared after the regex replacements of ``tests/nbval_sanitize.cfg``;
metadata, execution counts, images and stderr are never compared (nbval's defaults, plus stderr
as in ``conftest.py``). Papermill's injected-parameters cell is dropped before the cells are
paired.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbval import plugin

SANITIZE_FILE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"
# nbval's IPyNbFile.skip_compare without --nbdime, and stderr (TensorFlow start-up lines, warnings)
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg", "stderr")


class _Cell:
    """The part of nbval's ``IPyNbCell`` that compares outputs, without a kernel."""
    compare_outputs = plugin.IPyNbCell.compare_outputs
    sanitize = plugin.IPyNbCell.sanitize
    format_output_compare = plugin.IPyNbCell.format_output_compare

    def __init__(self, patterns: OrderedDict):
        self.parent = SimpleNamespace(sanitize_patterns=patterns, skip_compare=SKIP_COMPARE)
        self.colors = plugin.nocolors
        self.comparison_traceback = []
        self.ihook = SimpleNamespace(pytest_assertrepr_compare=lambda **_: [])  # nbval's plain repr of a mismatch
        self.config = None


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def _options(cell) -> dict:
    options = defaultdict(bool, plugin.find_metadata_tags(cell.metadata))
    options.update(dict(plugin.find_comment_markers(cell.source)))
    options.setdefault("check", True)
    return options


def compare(committed, executed, sanitize_file=SANITIZE_FILE) -> list[str]:
    """Differences between the outputs of ``executed`` and those stored in ``committed`` (paths
    of .ipynb files): one message per differing cell, empty when they agree."""
    patterns = OrderedDict(plugin.get_sanitize_patterns(Path(sanitize_file).read_text()))
    ref_cells = _code_cells(nbformat.read(str(committed), as_version=4))
    run_cells = _code_cells(nbformat.read(str(executed), as_version=4))
    if [c.source for c in ref_cells] != [c.source for c in run_cells]:
        return [f"{Path(executed).name}: its code cells are not those of {committed} (other sources)"]
    problems = []
    for number, (ref, run) in enumerate(zip(ref_cells, run_cells)):
        options = _options(ref)
        if options["skip"] or not options["check"] or ref.execution_count is None:
            continue
        errors = [o for o in run.outputs if o.get("output_type") == "error"]
        if errors and not options["check_exception"]:
            problems.append(f"cell {number}: raised {errors[0]['ename']}: {errors[0]['evalue']}")
            continue
        cell = _Cell(patterns)
        if not cell.compare_outputs(plugin.coalesce_streams(run.outputs), plugin.coalesce_streams(ref.outputs)):
            problems.append(f"cell {number}:\n{ref.source}\n" + "\n".join(map(str, cell.comparison_traceback)))
    return problems
