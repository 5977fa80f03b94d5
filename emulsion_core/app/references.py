"""The numbers each notebook produces, by name, checked against a reference per profile.

Beside nbval's comparison of printed outputs, a run's results (``results/<profile>/``) are read
back as flat named numbers (``table1.barshift.fog.validation.value``, ``cut.barshift_nm``,
``cutflow.fog.left``, ``audit.max_auc``, ``search.calls``, ...) and compared with
``tests/references/<profile>.json``, each within the tolerance :data:`TOLERANCES` states and
explains (after the IRIS-HEP Analysis Grand Challenge's ``validate_histograms.py``). Only JSON and
CSV are read: no TensorFlow. A reference is rewritten on demand only::

    python -m emulsion_core references --profile smoke [--refresh]
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.config.profiles import COMPACT_NETWORKS, VARIANT_METHODS
from emulsion_core.storage import atomic, paths, results

REFERENCES = paths.REPO / "tests" / "references"
NETWORKS = ("newsnet",) + tuple(COMPACT_NETWORKS) + tuple(VARIANT_METHODS.values())  # Table 1 methods of trained networks
TABLE1_FIELDS = ("value", "passed", "total")
CUTS = {"barshift_threshold": "barshift_nm", "shape_threshold": "shape_ellipticity",
        "newsnet_threshold": "newsnet_log_odds"}
ARCHITECTURE_FIELDS = {"parameters": "parameters", "MFLOPs per event": "mflops_per_event",
                       "training events": "training_events", "background training events": "background_events",
                       "validation AUC": "validation_auc", "fog at 30% C100keV": "fog_at_30pc"}


@dataclass(frozen=True)
class Tolerance:
    """How far a number may move from its reference, and why.

    The allowed difference is the largest of ``abs``, ``rel`` x |reference| and, when ``sigmas``
    is set, max(``min_events``, ``sigmas`` x sqrt(passed)) events (on a fraction: divided by the
    row's ``total``); all zero: exact.
    """

    reason: str
    abs: float = 0.0
    rel: float = 0.0
    sigmas: float = 0.0
    min_events: float = 0.0

    def allowed(self, name: str, reference: dict) -> float:
        """The allowed |found - reference| of ``name``, given the whole ``reference``."""
        out = max(self.abs, self.rel * abs(reference[name]))
        if self.sigmas:
            base, field = name.rsplit(".", 1)
            passed = reference[name] if field == "passed" else reference.get(f"{base}.passed")
            total = 1 if field == "passed" else reference.get(f"{base}.total")
            if passed is not None and total:
                out = max(out, max(self.min_events, self.sigmas * math.sqrt(passed)) / total)
        return out

    def describe(self, name: str = "") -> str:
        """The rule in words, e.g. ``abs 0.05``, ``max(2, 3 sqrt(passed)) events / total``."""
        parts = [f"abs {self.abs:g}"] * bool(self.abs) + [f"rel {self.rel:g}"] * bool(self.rel)
        if self.sigmas:
            per = "" if name.endswith(".passed") else " / total"
            parts.append(f"max({self.min_events:g}, {self.sigmas:g} sqrt(passed)) events{per}")
        return " or ".join(parts) or "exact"


_EXACT_COUNT = Tolerance("a count of the seeded simulation, cleaning and split: deterministic, exact")
_ROUND_OFF = Tolerance("conventional (seeded, no network): deterministic, float round-off only", rel=1e-9)
_NET_COUNT = Tolerance("network count: float summation order differs across CPU kinds (oneDNN, AVX2 vs "
                       "AVX-512); 3 binomial sd of the count, at least 2 events", sigmas=3, min_events=2)
_NET_FRACTION = Tolerance("network fraction: as its count, max(2, 3 sqrt(passed)) events / total "
                          "(CPU kinds sum in another order)", sigmas=3, min_events=2)
# first match wins (fnmatch on the name)
TOLERANCES = {
    "table1.*.total": _EXACT_COUNT,
    **{f"table1.{net}.*.passed": _NET_COUNT for net in NETWORKS},
    **{f"table1.{net}.*.value": _NET_FRACTION for net in NETWORKS},
    "table1.*.passed": _EXACT_COUNT,
    "table1.*": _ROUND_OFF,
    "cut.newsnet_log_odds*": Tolerance("network cut: other CPU kinds train another net; 0.5 log-odds, "
                                       "about the cut's 68 % interval at smoke (+-0.4)", abs=0.5),
    "cut.*": _ROUND_OFF,
    "cutflow.*.yield": _ROUND_OFF,
    "cutflow.*": _EXACT_COUNT,
    "audit.*.n_a": _EXACT_COUNT,
    "audit.*.n_b": _EXACT_COUNT,
    "audit.*": Tolerance("AUCs of acquisition statistics (sklearn, seeded): deterministic, float round-off",
                         rel=1e-9),
    "search.calls": Tolerance("the profile's search.n_calls: exact"),
    "search.repeats": Tolerance("the profile's search.repeats: exact"),
    "search.*": Tolerance("cross-validated AUC of a short network fit: CPU kinds sum in another order; "
                          "abs 0.05, a few times the repeats' noise floor at smoke (~0.01)", abs=0.05),
    "architectures.*.parameters": Tolerance("weights of an architecture fixed by the profile: exact"),
    "architectures.*_events": Tolerance("training events of a table row, fixed by the data and the budget: exact"),
    "architectures.*.mflops_per_event": Tolerance("cost of an architecture fixed by the profile", rel=1e-9),
    "architectures.*": Tolerance("network AUC or fog fraction of a short fit: CPU kinds sum in another order; "
                                 "abs 0.05, about 3 binomial sd of a few hundred validation events", abs=0.05),
}
_UNSTATED = Tolerance("no pattern of TOLERANCES matches: exact until one is stated")


def tolerance(name: str) -> Tolerance:
    """The first :data:`TOLERANCES` entry whose pattern matches ``name``."""
    return next((t for pattern, t in TOLERANCES.items() if fnmatchcase(name, pattern)), _UNSTATED)


def _slug(text: str) -> str:
    """``C30keV: rot0 vs rot0_repeat (null)`` -> ``C30keV_rot0_vs_rot0_repeat_null``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")


def _num(value):
    """A plain int (counts) or float for JSON."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _table1(profile: str) -> dict:
    file = results.path(profile, "table1")
    if not file.exists():
        return {}
    out = {}
    for row in pd.read_csv(file).to_dict("records"):
        base = f"table1.{row['method']}.{row['sample']}.{row['split']}"
        out.update({f"{base}.{f}": _num(row[f]) for f in TABLE1_FIELDS if f in row})
    return out


def _cuts(profile: str) -> dict:
    out = {}
    for key, name in CUTS.items():
        file = results.path(profile, key)
        if file.exists():
            cut = json.loads(file.read_text())
            out.update({f"cut.{name}": float(cut["value"]), f"cut.{name}.low": float(cut["low"]),
                        f"cut.{name}.high": float(cut["high"])})
    return out


def _numeric_rows(profile: str, key: str, prefix: str) -> dict:
    """``<prefix>.<row label>.<column>`` for every numeric cell of a CSV whose first column labels rows."""
    file = results.path(profile, key)
    if not file.exists():
        return {}
    frame = pd.read_csv(file, index_col=0).select_dtypes("number")
    return {f"{prefix}.{_slug(label)}.{_slug(column)}": _num(value)
            for column in frame for label, value in frame[column].items()}


def _audit(profile: str) -> dict:
    out = _numeric_rows(profile, "artefact_audit", "audit")
    aucs = [v for k, v in out.items() if k.endswith(".max_any")]
    return {**out, "audit.max_auc": max(aucs)} if aucs else out


def _search(profile: str) -> dict:
    file = results.path(profile, "search_history")
    if not file.exists():
        return {}
    history = json.loads(file.read_text())
    calls = [h for h in history if not h.get("repeat")]
    repeats = [h for h in history if h.get("repeat")]
    out = {"search.calls": len(calls), "search.repeats": len(repeats)}
    out.update({f"search.call_{h['call']}.score": float(h["score"]) for h in calls})
    out.update({f"search.repeat_{h.get('replica', i + 1)}.score": float(h["score"]) for i, h in enumerate(repeats)})
    if calls:
        out["search.best_score"] = max(float(h["score"]) for h in calls)
    return out


def _architectures(profile: str) -> dict:
    file = results.path(profile, "architectures")
    if not file.exists():
        return {}
    out = {}
    for row in json.loads(file.read_text()).values():
        base = f"architectures.{_slug(row['architecture'])}"
        out.update({f"{base}.{name}": _num(row[field]) for field, name in ARCHITECTURE_FIELDS.items() if field in row})
    return out


def named_numbers(profile_name: str) -> dict:
    """Every number a physicist reads from the profile's results, by flat name (what a profile did
    not run is absent): Table 1 rows, cuts, cut flow, audit AUCs, search scores, architectures."""
    out = {}
    for part in (_table1, _cuts, lambda p: _numeric_rows(p, "cutflow", "cutflow"), _audit, _search,
                 _architectures):
        out.update(part(profile_name))
    return dict(sorted(out.items()))


def _differ(found, ref, allowed: float) -> bool:
    if isinstance(found, float) and isinstance(ref, float) and math.isnan(found) and math.isnan(ref):
        return False
    return not abs(found - ref) <= allowed  # NaN on one side differs


def compare(found: dict, reference: dict) -> list:
    """One message per quantity that differs from ``reference`` beyond its tolerance, or is missing
    on either side; empty when all match."""
    problems = []
    for name in sorted(set(found) | set(reference)):
        if name not in found:
            problems.append(f"{name}: missing from this run (reference {reference[name]!r})")
        elif name not in reference:
            problems.append(f"{name}: not in the reference (this run {found[name]!r}); "
                            "if it is new, refresh the reference with --refresh")
        else:
            tol = tolerance(name)
            allowed = tol.allowed(name, reference)
            if _differ(found[name], reference[name], allowed):
                problems.append(f"{name}: reference {reference[name]!r}, this run {found[name]!r} "
                                f"(allowed {tol.describe(name)} = {allowed:.3g}: {tol.reason})")
    return problems


def reference_path(profile_name: str) -> Path:
    """``tests/references/<profile>.json``."""
    return REFERENCES / f"{profile_name}.json"


def write_reference(profile_name: str, path) -> Path:
    """Write the profile's :func:`named_numbers` of the current root to ``path``, atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_json(path, {"profile": profile_name, "numbers": named_numbers(profile_name)},
                             indent=1, sort_keys=True)


def read_reference(path) -> dict:
    """The named numbers of a reference file written by :func:`write_reference`."""
    return json.loads(Path(path).read_text())["numbers"]


def check(profile_name: str, file=None, refresh: bool = False) -> int:
    """Compare the current root's results of ``profile_name`` with its reference (``file``, default
    :func:`reference_path`) and print every mismatch; with ``refresh``, rewrite the reference.
    Returns the exit status: 0 all match (or refreshed), 1 mismatches, 2 no reference."""
    file = Path(file) if file else reference_path(profile_name)
    if refresh:
        print(f"wrote {len(read_reference(write_reference(profile_name, file)))} numbers to {file}")
        return 0
    if not file.exists():
        print(f"no reference {file}: write one with --refresh", file=sys.stderr)
        return 2
    found = named_numbers(profile_name)
    problems = compare(found, read_reference(file))
    for p in problems:
        print(p)
    print(f"{len(found)} numbers of profile {profile_name} under {paths.root()}: "
          f"{len(problems)} mismatch(es) with {file}")
    return 1 if problems else 0
