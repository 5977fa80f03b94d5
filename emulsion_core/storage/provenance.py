"""Provenance of results: what made each cached or finished artefact, and whether it is current.

Every artefact that is reused instead of recomputed (the simulator's scans, the checked features
of given scans, the clean selection, the conventional variables, a search or calibration
history, a final fit) is keyed by

- its inputs: settings, and the identity of the data or of the upstream artefact it was made
  from (the digest of that artefact's own key, so a change upstream reaches everything below);
- the version of the code that computes it: for each module that code imports inside the
  package, transitively (:func:`code_modules`, read from the sources, never from a hand-kept
  list), a hash of its syntax tree without docstrings (:func:`source_hash`), so that editing a
  comment or a docstring recomputes nothing and editing code recomputes what that code makes.

The key is written beside the artefact as ``<name>.stamp.json`` (the simulator's scans keep
theirs in the dataset's manifest, see :mod:`emulsion_core.formats.ownership`). When the key of the
current inputs and code differs from the record, the artefact is recomputed and one line on
stderr says why (:func:`is_current`); resumable histories and fits are moved aside instead
(:func:`resume_or_restart`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

from emulsion_core.storage.paths import PACKAGE
from emulsion_core.storage import atomic

# artefact -> (the modules whose code computes it, the modules that enter through an upstream
# artefact's key instead). The code key is every module of the package those modules import,
# directly or through others (lazy imports inside functions included), so it cannot go stale as
# imports change; the traversal stops at an upstream artefact's module (its code already changes
# that artefact's key, an input here), so editing the shape analysis does not retrain NEWSnet.
ARTEFACTS = {
    "scan": (("simulator.simulate",), ()),
    "given_features": (("data.dataset",), ()),
    "clean_events": (("data.selection",), ()),
    "conventional": (("analyses.conventional",), ("data.selection",)),
    "search_history": (("analyses.network_analysis",), ("data.selection",)),
    "final_fit": (("analyses.network_analysis",), ("data.selection",)),
    "architecture_table": (("analyses.architectures",), ("data.selection",)),
    "calibration": (("simulator.calibrate",), ()),
}
# modules that decide where a result is written and whether it is reused, never what it holds
NOT_CODE = frozenset({"storage.paths", "storage.provenance", "storage.atomic", "formats.ownership"})
RECORD_SUFFIX = ".stamp.json"


def module_file(module: str, package: Path = PACKAGE) -> Path | None:
    """The source file of ``emulsion_core.<module>`` (dotted, without the package name), or None."""
    base = package.joinpath(*module.split(".")) if module else package
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=None)
def imported_modules(module: str, package: Path = PACKAGE) -> frozenset:
    """The package's modules (not subpackages) that ``module``'s source imports anywhere,
    functions included. Read once per process, as :func:`source_hash` (a cached dataset's check
    parsed the package's sources once per scan: ~1.6 s of each notebook's start on ``smoke``)."""
    tree = ast.parse(module_file(module, package).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("emulsion_core."):
                path = module_file(name[len("emulsion_core."):], package)
                if path is not None and path.name != "__init__.py":
                    found.add(name[len("emulsion_core."):])
    return frozenset(found)


def code_modules(artefact: str, package: Path = PACKAGE) -> list:
    """The modules whose code versions key ``artefact``: its modules and all they import inside
    the package, transitively, short of its upstream artefacts' modules and :data:`NOT_CODE`."""
    entries, upstream_modules = ARTEFACTS[artefact]
    seen, todo = set(), list(entries)
    while todo:
        m = todo.pop()
        if m in seen or m in upstream_modules:
            continue
        seen.add(m)
        todo.extend(imported_modules(m, package))
    return sorted(seen - NOT_CODE)


@functools.lru_cache(maxsize=None)
def source_hash(module: str, package: Path = PACKAGE) -> str:
    """Version of the code of ``emulsion_core.<module>``: 12 hex digits of the SHA-256 of its
    syntax tree with docstrings removed (comments and formatting do not count)."""
    tree = ast.parse(module_file(module, package).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]


def _plain(value):
    """``value`` as JSON would give it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def key(artefact: str, **inputs) -> dict:
    """The key of ``artefact`` (a name of :data:`ARTEFACTS`) made from ``inputs`` by the current code."""
    return {"artefact": artefact, "inputs": _plain(inputs),
            "code": {f"{m.replace('.', '/')}.py": source_hash(m) for m in code_modules(artefact)}}


def digest(record: dict | None) -> str | None:
    """Short hash of a key (or record); None for None."""
    if record is None:
        return None
    return hashlib.sha256(json.dumps(_plain(record), sort_keys=True).encode()).hexdigest()[:16]


def record_path(path) -> Path:
    """Where the key of the artefact ``path`` is recorded: ``<path without suffix>.stamp.json``."""
    return Path(path).with_suffix(RECORD_SUFFIX)


def read(path) -> dict | None:
    """The key the artefact ``path`` was made with, or None when it has no readable record."""
    side = record_path(path)
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


def write(path, record: dict) -> None:
    """Record ``record`` as the key of the artefact ``path`` (atomically)."""
    side = record_path(path)
    atomic.write_json(side, _plain(record), indent=1, sort_keys=True)


def upstream(path) -> str | None:
    """Digest of the record of the artefact ``path``: the input to put in the key of anything
    made from it."""
    return digest(read(path))


def difference(old: dict | None, new: dict) -> str | None:
    """Why a record ``old`` does not match the key ``new`` (a short phrase), None when it does."""
    if old is None:
        return "it has no provenance record"
    old, new = _plain(old), _plain(new)
    if old == new:
        return None
    if isinstance(new, dict) and "code" in new and "code" not in old:
        return "it was made before code versions were recorded"
    changes = []

    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), where + (k,))
        elif a != b:
            changes.append((where, a, b))

    walk(old, new, ())
    phrases = []
    for where, a, b in changes:
        if where[:1] == ("code",) and len(where) == 2:
            phrases.append(f"the code of {where[1]} changed")
        else:
            name = ".".join(str(w) for w in (where[1:] if where[:1] == ("inputs",) else where))
            if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or len(repr(a) + repr(b)) > 60:
                phrases.append(f"{name} changed")
            else:
                phrases.append(f"{name} changed ({a!r} -> {b!r})")
    more = f" and {len(phrases) - 3} more" if len(phrases) > 3 else ""
    return "; ".join(phrases[:3]) + more


def is_current(path, new: dict, rebuild: bool = False) -> bool:
    """True when the artefact ``path`` exists and was made with the key ``new``.

    When it exists but is stale (or ``rebuild`` is set), one line on stderr says that it is
    recomputed and why. The caller recomputes and then calls :func:`write`.
    """
    path = Path(path)
    if not path.exists():
        return False
    why = "a rebuild was asked for" if rebuild else difference(read(path), new)
    if why is None:
        return True
    print(f"recomputing {_short(path)}: {why}", file=sys.stderr)
    return False


def resume_or_restart(path, new: dict, what: str) -> None:
    """Keep ``path`` (a resumable history or a fit's folder) to resume from when it was made with
    the key ``new``; otherwise move it aside to ``<name>.superseded`` with a warning that says
    why, so the job starts afresh instead of mixing results of other settings, data or code.
    Records ``new``."""
    path = Path(path)
    why = difference(read(path), new) if path.exists() else None
    if why is not None:
        old = path.with_name(path.name + ".superseded")
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        path.rename(old)
        warnings.warn(f"{what} in {path} was made with other settings, data or code ({why}); "
                      f"moved to {old.name}, starting afresh", stacklevel=3)
    write(path, new)


def _short(path: Path) -> str:
    """``path`` relative to the output root when it lies below it."""
    from emulsion_core.storage import paths
    try:
        return str(path.resolve().relative_to(paths.root()))
    except ValueError:
        return str(path)
