"""Command line: ``python -m emulsion_core {simulate,info,report,calibrate,predict,onednn} ...`` (also ``emulsion-dl``)."""

from __future__ import annotations

import argparse
import json
import sys


def _simulate(args) -> int:
    from . import dataset, profiles
    profile = profiles.load(args.profile)
    if args.seed is not None:
        from dataclasses import replace
        profile = replace(profile, seed=args.seed)
    from .simulate import simulate_dataset
    folder = dataset.dataset_dir(profile)
    splits = simulate_dataset(folder, profile.events, profile.seed, profile.samples,
                              validation_fraction=profile.validation_fraction, block_size=profile.block_size,
                              workers=args.workers)
    print(f"dataset {profile.dataset}: {folder} ({splits.name} written)")
    return 0


def _info(args) -> int:
    from . import io
    status = 0
    for path in args.files:
        try:
            attrs = io.read_attrs(path)
            events = io.read_events(path)
        except io.DataFormatError as err:
            print(f"INVALID {err}", file=sys.stderr)
            status = 1
            continue
        attrs.pop("simulator_config", None)
        print(f"{path}: {len(events)} events, columns {', '.join(events.columns)}")
        print("  " + json.dumps(attrs, default=str))
    return status


def _report(args) -> int:
    from . import profiles, report
    profile = profiles.load(args.profile)
    durations = dict(d.split("=", 1) for d in args.duration or [])
    path = report.write_index(profile, args.notebooks, durations)
    print(f"report index: {path}")
    return 0


def _calibrate(args) -> int:
    from . import calibrate
    params, summary, history = calibrate.calibrate(args.calls, args.events, args.seed, args.checkpoint)
    print("calibrated free parameters (set them as SimulatorConfig defaults):")
    for k, v in params.items():
        print(f"  {k} = {v:.4g}")
    print(f"threshold at 30% C100keV: {summary.threshold_nm:.1f} nm (target 42.3 +- 5)")
    for k, v in summary.efficiency.items():
        print(f"  {k}: {100 * v:.1f} % above threshold")
    print(f"chi2 = {summary.chi2():.2f} after {len(history)} calls")
    return 0


def _predict(args) -> int:
    from .predict import predict_files
    result = predict_files(args.model, args.input, args.output, args.on_error, progress=True)
    print(f"scored {result['scored']} events into {args.output}")
    if result["failed"]:
        print(f"{len(result['failed'])} file(s) failed: {', '.join(result['failed'])}", file=sys.stderr)
        return 1
    return 0


def _onednn(args) -> int:
    from . import onednn_guard
    state = onednn_guard.ensure(retest=args.retest)
    print(onednn_guard.describe(), file=sys.stderr)
    print("on" if state.onednn else "off")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="emulsion_core", description="emulsion-dl command line")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="simulate a profile's dataset into data/<dataset>/ (resumes)")
    s.add_argument("--profile", default="default", help="profile name or YAML path (default: default)")
    s.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    s.set_defaults(func=_simulate)
    i = sub.add_parser("info", help="validate scan files and print their attributes")
    i.add_argument("files", nargs="+")
    i.set_defaults(func=_info)
    r = sub.add_parser("report", help="write reports/<profile>/index.html")
    r.add_argument("--profile", default="default")
    r.add_argument("--duration", action="append", help="NOTEBOOK=SECONDS, repeatable")
    r.add_argument("notebooks", nargs="*")
    r.set_defaults(func=_report)
    c = sub.add_parser("calibrate", help="fit the simulator's free parameters to the paper's barshift numbers")
    c.add_argument("--calls", type=int, default=30, help="Gaussian-process evaluations (default 30)")
    c.add_argument("--events", type=int, default=3000, help="clean events per sample per evaluation")
    c.add_argument("--seed", type=int, default=2021)
    c.add_argument("--checkpoint", default="results/calibration/simulator.json",
                   help="history file, updated after every call; a rerun resumes from it")
    c.set_defaults(func=_calibrate)
    pr = sub.add_parser("predict", help="score scan files with trained networks (ensemble mean), streaming")
    pr.add_argument("--model", action="append", required=True, help=".keras file; repeat for an ensemble")
    pr.add_argument("--input", nargs="+", required=True, help="scan files (format_version 1)")
    pr.add_argument("--output", required=True, help="CSV of per-event scores (appended; resumes)")
    pr.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                    help="a bad file stops the run (default) or is skipped; rows already written stay")
    pr.set_defaults(func=_predict)
    o = sub.add_parser("onednn", help="self-test TensorFlow's oneDNN convolutions on this machine (cached); "
                                      "prints on or off (off: run with TF_ENABLE_ONEDNN_OPTS=0)")
    o.add_argument("--retest", action="store_true", help="run the self-test again instead of reading its cache")
    o.set_defaults(func=_onednn)
    args = ap.parse_args(argv)
    from .profiles import ProfileError
    from .io import DataFormatError
    try:
        return args.func(args)
    except (ProfileError, DataFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
