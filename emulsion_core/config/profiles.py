"""Run profiles (``smoke``, ``default``, ``paper``): every knob of a run, read from YAML; an unknown
key or a bad value raises :class:`ProfileError` naming it. ``run_all.sh`` passes the YAML file's
absolute path as the notebooks' ``profile`` parameter, so every notebook resolves exactly that
file (:func:`resolve`), never a shipped profile of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from emulsion_core.config.paper import PAPER_CLASSES, SEARCH_SPACE
from emulsion_core.config.samples import BULK_SCAN, ROTATED_SCANS, SAMPLES, SIGNAL_SAMPLES

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"  # emulsion_core/profiles/*.yaml
# the compact networks of ``models.ARCHITECTURES`` (named here so that reading a profile needs no TensorFlow)
COMPACT_NETWORKS = ("compact_3d", "polarisation_channels_2d")
# the profile's NEWSnet fed the mean of the 8 images (repeated), the 8 in a random order per event,
# or trained on background restricted to the carbon training events' imaging-depth band
NEWSNET_VARIANTS = ("unpolarised", "shuffled", "depth_matched")
VARIANT_METHODS = {"depth_matched": "newsnet_depth_matched"}  # the variants with Table 1 rows: their method


class ProfileError(ValueError):
    """A profile file is missing, has an unknown key or a bad value (the message names it)."""


@dataclass(frozen=True)
class Profile:
    """A validated run profile.

    events : {sample: {scan: raw events to simulate}} for rot0, rot45, rot90, rot0_repeat, test.
    """

    name: str
    seed: int
    dataset: str
    samples: tuple
    events: dict
    validation_fraction: float
    block_size: int
    description: str = ""
    path: str = ""
    network: dict = None
    search: dict = None
    training: dict = None
    simulation: dict = None  # per_sample_conditions (bool), contamination {sample: {train, test}}
    architectures: dict = None  # budget {epochs, train_fraction}, newsnet [{width_scale, n_identity}], compact [names]
    cluster: dict = None  # where work runs: {where, jobqueue} (emulsion_core.app.cluster)
    angular: dict = None  # rotation_events: test events per sample in notebook 05's symmetry check

    def simulator_config(self):
        """The simulator configuration this profile asks for (defaults + its ``simulation`` section)."""
        from emulsion_core.config.simulator import SimulatorConfig, _default_areas
        sim = self.simulation or {}
        cfg = SimulatorConfig()
        if "contamination" in sim:
            cfg = cfg.replace(areas=_default_areas(sim["contamination"]))
        if sim.get("per_sample_conditions"):
            cfg = cfg.replace(acquisition={"per_sample": True})
        return cfg

    def scan_events(self, sample: str, scan: str) -> int:
        return self.events[sample][scan]


_KEYS = {"profile", "seed", "dataset", "samples", "events", "validation_fraction", "block_size", "description",
         "network", "search", "training", "simulation", "architectures", "cluster", "angular"}
# NEWSnet sections: key -> (type, minimum, maximum, default); search.dimensions (a list) is checked by _dimensions
_SECTIONS = {
    "network": {"width_scale": (float, 0.01, 1.0, 1.0), "batch_size": (int, 8, 4096, 256)},
    "search": {"n_calls": (int, 1, 1000, 150), "n_initial_points": (int, 1, 100, 10), "epochs": (int, 1, 500, 10),
               "folds": (int, 2, 10, 3), "train_fraction": (float, 0.01, 1.0, 0.5),
               "repeats": (int, 0, 100, 0), "parallel": (int, 1, 64, 1), "dimensions": (list, None, None, None)},
    "training": {"epochs": (int, 1, 1000, 60), "ensemble": (int, 1, 100, 10)},
    "angular": {"rotation_events": (int, 1, 1_000_000, 300)},  # notebook 05's symmetry check: test events per sample
}


# keys that are not single numbers, validated by _practice: the training practice (issue 10, item 6)
_STRUCTURED = {"network": ("classes", "precision"), "training": ("class_balance", "early_stopping", "seeds"), "search": ("mode",)}
SEARCH_MODES = ("batch", "async")  # emulsion_core.networks.search.run
PRECISIONS = ("float32", "mixed_bfloat16")  # network.precision: Keras' dtype policy of the search's and the final fit's networks


def _section(source, name, raw):
    spec = _SECTIONS[name]
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(source, name, "expected a mapping")
    out = {}
    structured = _STRUCTURED.get(name, ())
    for key in raw:
        if key not in spec and key not in structured:
            _fail(source, f"{name}.{key}", f"unknown key (known: {', '.join(list(spec) + list(structured))})")
    out.update(_practice(source, name, raw))
    for key, (kind, lo, hi, default) in spec.items():
        if kind is list:
            continue
        value = raw.get(key, default)
        if name == "network" and key == "width_scale" and isinstance(value, list):
            out[key] = _width_pair(source, f"{name}.{key}", value, lo, hi)
            continue
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and (kind is float or float(value).is_integer()) and lo <= value <= hi)
        if not ok:
            _fail(source, f"{name}.{key}", f"expected {kind.__name__} in [{lo}, {hi}], got {value!r}")
        out[key] = kind(value)
    if name == "search":
        out["dimensions"] = _dimensions(source, raw.get("dimensions"))
        out["mode"] = raw.get("mode", "batch")
        if out["mode"] not in SEARCH_MODES:
            _fail(source, "search.mode", f"expected one of {', '.join(SEARCH_MODES)}, got {out['mode']!r}")
    if name == "training" and out["ensemble"] > out["epochs"]:
        _fail(source, "training.ensemble", "cannot exceed training.epochs")
    return out


def _width_pair(source, key, value, lo=0.01, hi=1.0) -> list:
    """A ``[stem, residual]`` pair of width scales, each in [lo, hi]."""
    if (len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi
                                for v in value)):
        _fail(source, key, f"expected a number or a pair [stem, residual] of numbers in [{lo}, {hi}], got {value!r}")
    return [float(v) for v in value]


def _architectures(source, raw) -> dict:
    """The ``architectures`` section (notebook 04's table, :mod:`emulsion_core.analyses.architectures`):
    ``budget`` {epochs, train_fraction}, ``newsnet`` (a list of {width_scale: number or
    [stem, residual], n_identity (optional)}), ``compact`` (names of compact networks) and
    ``variants`` (the profile's NEWSnet with another input or training set: ``unpolarised``,
    ``shuffled``, ``depth_matched``)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(source, "architectures", "expected a mapping")
    for key in raw:
        if key not in ("budget", "newsnet", "compact", "variants"):
            _fail(source, f"architectures.{key}", "unknown key (known: budget, newsnet, compact, variants)")
    budget = raw.get("budget", {"epochs": 3, "train_fraction": 0.25})
    if not isinstance(budget, dict) or set(budget) != {"epochs", "train_fraction"}:
        _fail(source, "architectures.budget", f"expected a mapping with epochs and train_fraction, got {budget!r}")
    epochs = _int(source, "architectures.budget.epochs", budget["epochs"], minimum=1)
    frac = budget["train_fraction"]
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < frac <= 1.0:
        _fail(source, "architectures.budget.train_fraction", f"expected a number in (0, 1], got {frac!r}")
    nets = raw.get("newsnet", [])
    if not isinstance(nets, list):
        _fail(source, "architectures.newsnet", "expected a list of {width_scale, n_identity}")
    out_nets = []
    for i, net in enumerate(nets):
        where = f"architectures.newsnet[{i}]"
        if not isinstance(net, dict) or "width_scale" not in net or set(net) - {"width_scale", "n_identity"}:
            _fail(source, where, f"expected a mapping with width_scale and optionally n_identity, got {net!r}")
        ws = net["width_scale"]
        pair = _width_pair(source, f"{where}.width_scale", ws if isinstance(ws, list) else [ws, ws])
        entry = {"width_scale": pair}
        if "n_identity" in net:
            entry["n_identity"] = _int(source, f"{where}.n_identity", net["n_identity"])
        out_nets.append(entry)
    compact = raw.get("compact", [])
    if not isinstance(compact, list) or any(c not in COMPACT_NETWORKS for c in compact):
        _fail(source, "architectures.compact", f"expected a list of {', '.join(COMPACT_NETWORKS)}, got {compact!r}")
    variants = raw.get("variants", [])
    if not isinstance(variants, list) or any(v not in NEWSNET_VARIANTS for v in variants):
        _fail(source, "architectures.variants", f"expected a list of {', '.join(NEWSNET_VARIANTS)}, got {variants!r}")
    return {"budget": {"epochs": epochs, "train_fraction": float(frac)}, "newsnet": out_nets, "compact": list(compact),
            "variants": list(variants)}


def _dimensions(source, raw) -> list:
    """``search.dimensions``: the names of :data:`~emulsion_core.config.paper.SEARCH_SPACE` the search varies, in its order
    (the others stay at the paper's values); all of SEARCH_SPACE when omitted."""
    if raw is None:
        return list(SEARCH_SPACE)
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        _fail(source, "search.dimensions", f"expected a non-empty list of parameter names, got {raw!r}")
    for k in raw:
        if k not in SEARCH_SPACE:
            _fail(source, "search.dimensions", f"unknown parameter {k!r} (known: {', '.join(SEARCH_SPACE)})")
    if len(set(raw)) != len(raw):
        _fail(source, "search.dimensions", f"a parameter is listed twice: {raw!r}")
    return [k for k in SEARCH_SPACE if k in raw]


def _practice(source, name, raw) -> dict:
    """The structured keys of ``network`` and ``training`` (defaults when absent):

    - ``network.classes``: the classes the network learns, sample names (default the paper's
      [C30keV, C100keV, fog]); carbon samples are signal, the others background; must hold
      C100keV (the reference cut) and fog (Table 1's background), each once;
    - ``training.class_balance``: ``weights`` (default), ``oversample`` or ``none``;
    - ``training.early_stopping``: {smoothing: epochs averaged (>= 1), patience: epochs without
      improvement of the smoothed validation loss (0: off)}; default {smoothing: 1, patience: 0};
    - ``training.seeds``: extra training seeds for the seed spread (default []).
    """
    out = {}
    if name == "network":
        classes = raw.get("classes", list(PAPER_CLASSES))
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            _fail(source, "network.classes", f"expected a list of sample names, got {classes!r}")
        for c in classes:
            if c not in SAMPLES:
                _fail(source, "network.classes", f"unknown sample {c!r} (known: {', '.join(SAMPLES)})")
        if len(set(classes)) != len(classes) or "C100keV" not in classes or "fog" not in classes:
            _fail(source, "network.classes", f"expected distinct samples including C100keV (the reference cut) "
                  f"and fog (Table 1's background), got {classes!r}")
        out["classes"] = list(classes)
        precision = raw.get("precision", "float32")
        if precision not in PRECISIONS:
            _fail(source, "network.precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        out["precision"] = precision
    if name == "training":
        balance = raw.get("class_balance", "weights")
        if balance not in ("weights", "oversample", "none"):
            _fail(source, "training.class_balance", f"expected weights, oversample or none, got {balance!r}")
        out["class_balance"] = balance
        es = raw.get("early_stopping", {"smoothing": 1, "patience": 0})
        if not isinstance(es, dict) or set(es) - {"smoothing", "patience"}:
            _fail(source, "training.early_stopping", f"expected a mapping with smoothing and patience, got {es!r}")
        out["early_stopping"] = {"smoothing": _int(source, "training.early_stopping.smoothing", es.get("smoothing", 1), 1),
                                 "patience": _int(source, "training.early_stopping.patience", es.get("patience", 0))}
        seeds = raw.get("seeds", [])
        if not isinstance(seeds, list):
            _fail(source, "training.seeds", f"expected a list of integers, got {seeds!r}")
        out["seeds"] = [_int(source, "training.seeds", v) for v in seeds]
        if len(set(out["seeds"])) != len(out["seeds"]):
            _fail(source, "training.seeds", f"expected distinct seeds, got {seeds!r}")
    return out


def _mapping(source, name: str, raw, known: tuple) -> dict:
    """A section that must be a mapping of ``known`` keys (absent: empty)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(source, name, f"expected a mapping with {', '.join(known)}")
    for key in raw:
        if key not in known:
            _fail(source, f"{name}.{key}", f"unknown key (known: {', '.join(known)})")
    return raw


def _simulation(source, raw) -> dict:
    """The ``simulation`` section: ``per_sample_conditions`` (bool, default false: acquisition shared
    by every sample) and ``contamination`` ({carbon sample: {train: f, test: f}}, fractions)."""
    from emulsion_core.config.simulator import DEFAULT_CONTAMINATION
    raw = _mapping(source, "simulation", raw, ("per_sample_conditions", "contamination"))
    flag = raw.get("per_sample_conditions", False)
    if not isinstance(flag, bool):
        _fail(source, "simulation.per_sample_conditions", f"expected true or false, got {flag!r}")
    cont = raw.get("contamination", DEFAULT_CONTAMINATION)
    if not isinstance(cont, dict):
        _fail(source, "simulation.contamination", "expected a mapping sample -> {train, test}")
    out = {}
    for sample, areas in cont.items():
        if sample not in SIGNAL_SAMPLES:
            _fail(source, f"simulation.contamination.{sample}", f"not a carbon sample ({', '.join(SIGNAL_SAMPLES)})")
        if not isinstance(areas, dict) or set(areas) - {"train", "test"}:
            _fail(source, f"simulation.contamination.{sample}", "expected a mapping with train and test")
        for area, f in areas.items():
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f < 1.0:
                _fail(source, f"simulation.contamination.{sample}.{area}", f"expected a fraction in [0, 1), got {f!r}")
        out[sample] = {a: float(areas.get(a, 0.0)) for a in ("train", "test")}
    return {"per_sample_conditions": flag, "contamination": out}


def _fail(source, key, problem):
    raise ProfileError(f"profile {source}: key '{key}': {problem}")


def _int(source, key, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(source, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _bulk_events(source, per, samples, events) -> None:
    """``events.test_bulk`` (optional): raw events of carbon tracks at the bulk samples' depths in
    the test area, per carbon sample of the profile (the bulk-signal test, split ``test_bulk``)."""
    if per is None:
        return
    if not isinstance(per, dict):
        _fail(source, "events.test_bulk", "expected a mapping carbon sample -> number of raw events")
    for s, n in per.items():
        if s not in samples or s not in SIGNAL_SAMPLES:
            _fail(source, f"events.test_bulk.{s}", "not one of the profile's carbon samples")
        events[s][BULK_SCAN] = _int(source, f"events.test_bulk.{s}", n, minimum=1)


CLUSTER_WHERE = "none, local:N, a scheduler address (tcp://host:port), slurm or htcondor"
JOBQUEUE = {"queue": str, "account": str, "cores": int, "processes": int, "memory": str, "gpus": int,
            "walltime": str, "python": str, "log_directory": str, "jobs": int}


def _cluster(source, raw) -> dict:
    """The ``cluster`` section: ``where`` (:data:`CLUSTER_WHERE`; default none, one machine) and, for
    slurm or htcondor, ``jobqueue`` ({queue, account, cores, processes, memory, gpus, walltime,
    python, log_directory, jobs}: what one batch job asks for and how many to start)."""
    raw = _mapping(source, "cluster", raw, ("where", "jobqueue"))
    where = str(raw.get("where", "none"))
    if not (where in ("none", "slurm", "htcondor") or where.startswith(("local:", "tcp://", "tls://"))):
        _fail(source, "cluster.where", f"expected {CLUSTER_WHERE}, got {where!r}")
    jq = raw.get("jobqueue") or {}
    if not isinstance(jq, dict):
        _fail(source, "cluster.jobqueue", "expected a mapping")
    for key, value in jq.items():
        if key not in JOBQUEUE:
            _fail(source, f"cluster.jobqueue.{key}", f"unknown key (known: {', '.join(JOBQUEUE)})")
        if JOBQUEUE[key] is int:
            _int(source, f"cluster.jobqueue.{key}", value, minimum=0 if key == "gpus" else 1)
        elif not isinstance(value, str):
            _fail(source, f"cluster.jobqueue.{key}", f"expected text, got {value!r}")
    return {"where": where, "jobqueue": dict(jq)}


def load(name_or_path) -> Profile:
    """Load a profile by name (``smoke``) or path to a YAML file, validating every key."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ProfileError(f"profile {name_or_path!r}: no such profile (known: {', '.join(known)})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ProfileError(f"profile {path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"profile {path}: expected a mapping of keys")
    return from_dict(raw, source=str(path))


def from_dict(raw: dict, source: str = "<dict>") -> Profile:
    """Validate a profile mapping (see the YAML files for the layout)."""
    for key in raw:
        if key not in _KEYS:
            _fail(source, key, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    for key in ("profile", "seed", "dataset", "samples", "events"):
        if key not in raw:
            _fail(source, key, "missing")
    seed = _int(source, "seed", raw["seed"])
    samples = raw["samples"]
    if not isinstance(samples, list) or not samples:
        _fail(source, "samples", f"expected a non-empty list, got {samples!r}")
    for s in samples:
        if s not in SAMPLES:
            _fail(source, "samples", f"unknown sample {s!r} (known: {', '.join(SAMPLES)})")
    ev = raw["events"]
    if not isinstance(ev, dict):
        _fail(source, "events", "expected a mapping with 'rotated' and 'test'")
    for key in ev:
        if key not in ("rotated", "test", "test_bulk"):
            _fail(source, f"events.{key}", "unknown key (known: rotated, test, test_bulk)")
    events = {s: {} for s in samples}
    _bulk_events(source, ev.get("test_bulk"), samples, events)
    for group in ("rotated", "test"):
        per = ev.get(group)
        if not isinstance(per, dict):
            _fail(source, f"events.{group}", "expected a mapping sample -> number of raw events")
        for s in per:
            if s not in samples:
                _fail(source, f"events.{group}.{s}", "not one of the profile's samples")
        for s in samples:
            if s not in per:
                _fail(source, f"events.{group}.{s}", "missing")
            n = _int(source, f"events.{group}.{s}", per[s], minimum=1)
            for scan in (ROTATED_SCANS if group == "rotated" else ("test",)):
                events[s][scan] = n
    vf = raw.get("validation_fraction", 0.4)
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0.0 < vf < 1.0:
        _fail(source, "validation_fraction", f"expected a number in (0, 1), got {vf!r}")
    name, dataset = raw["profile"], raw["dataset"]
    for key, value in (("profile", name), ("dataset", dataset)):
        if not isinstance(value, str) or not value or "/" in value:
            _fail(source, key, f"expected a plain name, got {value!r}")
    return Profile(name=name, seed=seed, dataset=dataset, samples=tuple(samples), events=events,
                   validation_fraction=float(vf), block_size=_int(source, "block_size", raw.get("block_size", 1024), 64),
                   description=str(raw.get("description", "")), path=source,
                   network=_section(source, "network", raw.get("network")),
                   search=_section(source, "search", raw.get("search")),
                   training=_section(source, "training", raw.get("training")),
                   angular=_section(source, "angular", raw.get("angular")),
                   simulation=_simulation(source, raw.get("simulation")),
                   architectures=_architectures(source, raw.get("architectures")),
                   cluster=_cluster(source, raw.get("cluster")))


def resolve(profile: str, seed: int | None = None) -> Profile:
    """The profile a notebook runs with: ``load(profile)``, its seed replaced when given.

    Another seed gives another run: its name and dataset get a ``-seed<N>`` suffix so that its
    data, results and figures sit beside the profile's own instead of replacing them.
    """
    from dataclasses import replace
    p = load(profile)
    if seed is None or seed == p.seed:
        return p
    tag = f"-seed{int(seed)}"
    return replace(p, seed=int(seed), name=p.name + tag, dataset=p.dataset + tag)
