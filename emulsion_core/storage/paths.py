"""Where everything lives: data, results, figures, reports and caches of a profile.

All paths derive from one root: the repository checkout by default, or the folder named by
the environment variable ``EMULSION_DL_ROOT`` (what ``run_all.sh --output`` and the tests use
to run a whole pipeline in a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # emulsion_core/
REPO = PACKAGE.parent
NOTEBOOKS = REPO / "notebooks"


def root() -> Path:
    """Root folder of the outputs (``EMULSION_DL_ROOT`` or the repository)."""
    return Path(os.environ.get("EMULSION_DL_ROOT", REPO)).resolve()


def data_dir(dataset: str) -> Path:
    """``<root>/data/<dataset>/``: scan files and ``splits.csv``."""
    return root() / "data" / dataset


def results_dir(profile: str) -> Path:
    """``<root>/results/<profile>/``: tables and thresholds that later notebooks read."""
    return _made(root() / "results" / profile)


def figures_dir(profile: str) -> Path:
    """``<root>/figures/<profile>/``: every figure as PNG and PDF."""
    return _made(root() / "figures" / profile)


def reports_dir(profile: str) -> Path:
    """``<root>/reports/<profile>/``: executed notebooks and their HTML renderings."""
    return _made(root() / "reports" / profile)


def cache_dir(dataset: str) -> Path:
    """``<root>/cache/<dataset>/``: what is measured once from given scans (never written into
    their own folder)."""
    return _made(root() / "cache" / dataset)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine_cache() -> Path:
    """This machine's cache (measured choices, exported models): ``EMULSION_DL_CACHE``, else
    ``$XDG_CACHE_HOME/emulsion-dl`` or ``~/.cache/emulsion-dl``."""
    base = os.environ.get("EMULSION_DL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emulsion-dl"
    return _made(Path(base))
