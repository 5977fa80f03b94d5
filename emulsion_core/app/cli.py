"""The command line: ``python -m emulsion_core {simulate,prepare,info,notebooks,report,calibrate,export,predict,convert,references,onednn} ...``
(also ``emulsion-dl``)."""

from __future__ import annotations

import argparse
import json
import sys


def _simulate(args) -> int:
    from emulsion_core.data import dataset
    from emulsion_core.config import profiles
    profile = profiles.resolve(args.profile, args.seed)  # another seed: the <dataset>-seed<N> folder
    from emulsion_core.app import prepare
    folder = dataset.dataset_dir(profile)
    before = dataset.fingerprint(folder) if (folder / "splits.csv").exists() else None
    splits = prepare.simulate(profile, workers=args.workers, cluster=args.cluster)
    cached = before is not None and dataset.fingerprint(folder) == before
    print(f"dataset {profile.dataset}: {folder} ({'cached: every scan current' if cached else splits.name + ' written'})")
    return 0


def _prepare(args) -> int:
    from emulsion_core.data import dataset
    from emulsion_core.app import prepare
    from emulsion_core.formats import hdf5, ownership, splits
    from emulsion_core.config import profiles
    profile = profiles.resolve(args.profile, args.seed)
    folder = dataset.dataset_dir(profile)
    contents = ownership.inspect(folder)
    if contents.given:
        had_splits = (folder / splits.FILE).exists()
        prepare.ensure_dataset(profile)
        listed = set(hdf5.read_splits(folder)["file"])
        unlisted = sorted(set(contents.scans) - listed)
        print(f"dataset {profile.dataset}: {folder} holds {len(contents.scans)} scan file(s) the simulator did not "
              f"write; analysing them as they are (checked like `info`; splits.csv "
              f"{'kept' if had_splits else 'made by the rule of emulsion_core.formats.splits'})")
        if unlisted:
            print(f"  not in splits.csv, so not analysed: {', '.join(unlisted)}")
        if contents.unlisted_simulations:
            print(f"  {len(contents.unlisted_simulations)} of them carry the simulator's attributes but no manifest "
                  f"lists them (simulated before manifests existed, or copied): delete {folder} to simulate afresh")
        return 0
    return _simulate(args)


def _export(args) -> int:
    from emulsion_core.analyses import onnx_export
    from emulsion_core.config import profiles
    path = onnx_export.export_profile(profiles.load(args.profile), args.variant, args.output)
    print(f"ONNX: {path}\nsidecar: {path.with_suffix('.json')}")
    return 0


def _info(args) -> int:
    from emulsion_core.formats import hdf5
    status = 0
    for path in args.files:
        try:
            attrs, events = hdf5.check_scan(path)
        except hdf5.DataFormatError as err:
            print(f"INVALID {err}", file=sys.stderr)
            status = 1
            continue
        attrs.pop("simulator_config", None)
        print(f"{path}: {len(events)} events, columns {', '.join(events.columns)}")
        print("  " + json.dumps(attrs, default=str))
    return status


def _notebooks(args) -> int:
    from pathlib import Path

    from emulsion_core.app import notebooks
    from emulsion_core.config import profiles
    from emulsion_core.storage import paths
    profile = profiles.load(args.profile)  # its path: the YAML file it was read from
    return notebooks.run(profile, str(Path(profile.path).resolve()), args.notebook_dir or paths.NOTEBOOKS, args.only)


def _report(args) -> int:
    from emulsion_core.config import profiles
    from emulsion_core.app import report
    profile = profiles.load(args.profile)
    durations = dict(d.split("=", 1) for d in args.duration or [])
    path = report.publish(profile, args.notebooks, durations)
    print(f"report index: {path}")
    return 0


def _calibrate(args) -> int:
    from emulsion_core.simulator import calibrate
    from emulsion_core.storage import paths
    checkpoint = args.checkpoint or paths.results_dir("calibration") / "simulator.json"
    cfg, summary, history = calibrate.calibrate(args.calls, args.events, args.seed, checkpoint)
    print("calibrated parameters (set them as SimulatorConfig defaults):")
    print(f"  vibration.noise_residual_nm = {cfg.vibration.noise_residual_nm:.4g}")
    for k in calibrate.FREE:
        section, name = k.split(".")
        print(f"  {k} = {getattr(getattr(cfg, section), name):.4g}")
    print(summary.residuals().round(3).to_string())
    print(f"chi2 = {summary.chi2():.2f} after {len(history)} calls")
    return 0


def _predict(args) -> int:
    from emulsion_core.app import cluster
    from emulsion_core.networks.predict import predict_files
    with cluster.connect(None, args.cluster) as (client, where):
        if client is not None:
            print(where)
        result = predict_files(args.model, args.input, args.output, args.on_error, progress=client is None,
                               classes=args.classes.split(",") if args.classes else None,
                               executor=cluster.executor(client), engine=args.engine)
    print(f"scored {result['scored']} events into {args.output}")
    if result["failed"]:
        print(f"{len(result['failed'])} file(s) failed: {', '.join(result['failed'])}", file=sys.stderr)
        return 1
    return 0


def _convert(args) -> int:
    from emulsion_core.formats.convert import convert_run
    try:
        convert_run(args.run, args.grains, args.output, args.sample, args.scan, rotation_deg=args.rotation_deg,
                    area=args.area, beam_phi_deg=args.beam_phi_deg, energy_kev=args.energy_kev,
                    pixel_size_nm=args.pixel_size_nm, frame_width=args.frame_width,
                    frame_height=args.frame_height, progress=True)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _references(args) -> int:
    from emulsion_core.app import references
    return references.check(args.profile, args.reference, args.refresh)


def _onednn(args) -> int:
    from emulsion_core.networks import onednn_guard
    state = onednn_guard.ensure(retest=args.retest)
    print(onednn_guard.describe(), file=sys.stderr)
    print("on" if state.onednn else "off")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per job, each with its ``func``.

    Long: one ``add_parser`` block per subcommand, read top to bottom like ``--help``."""
    ap = argparse.ArgumentParser(prog="emulsion_core", description="emulsion-dl command line")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, func, text in (
            ("simulate", _simulate, "simulate a profile's dataset into data/<dataset>/ (resumes)"),
            ("prepare", _prepare, "make a profile's dataset ready: simulate it into an empty or simulator-owned "
                                  "folder, or check the given scans there (a missing splits.csv is made)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--profile", default="default", help="profile name or YAML path (default: default)")
        s.add_argument("--seed", type=int, default=None, help="override the profile's seed")
        s.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
        s.add_argument("--cluster", default=None, help="where the simulation runs: none (this machine), local:N (a Dask "
                                                       "LocalCluster of N workers), tcp://host:port, slurm or htcondor "
                                                       "(the profile's cluster.jobqueue); default the profile's cluster.where")
        s.set_defaults(func=func)
    i = sub.add_parser("info", help="validate scan files (attributes, events, every image) and print their attributes")
    i.add_argument("files", nargs="+")
    i.set_defaults(func=_info)
    nb = sub.add_parser("notebooks", help="run the chain's notebooks with papermill into reports/<profile>/, "
                                          "render them to HTML and write the index (what run_all.sh runs)")
    nb.add_argument("--profile", default="default", help="profile name or YAML path (default: default)")
    nb.add_argument("--notebook-dir", default=None, help="the NN_*.ipynb of this folder (default: notebooks/)")
    nb.add_argument("--only", default=None, help="comma-separated prefixes of the notebooks to run, e.g. 01,02")
    nb.set_defaults(func=_notebooks)
    r = sub.add_parser("report", help="render the executed notebooks of reports/<profile>/ to HTML and write its index.html")
    r.add_argument("--profile", default="default")
    r.add_argument("--duration", action="append", help="NOTEBOOK=SECONDS, repeatable")
    r.add_argument("notebooks", nargs="*")
    r.set_defaults(func=_report)
    c = sub.add_parser("calibrate", help="fit the simulator's free parameters to the paper's barshift numbers")
    c.add_argument("--calls", type=int, default=30, help="Gaussian-process evaluations (default 30)")
    c.add_argument("--events", type=int, default=3000, help="clean events per sample per evaluation")
    c.add_argument("--seed", type=int, default=2021)
    c.add_argument("--checkpoint", default=None,
                   help="history file, updated after every call; a rerun resumes from it "
                        "(default: <root>/results/calibration/simulator.json, root = EMULSION_DL_ROOT or the checkout)")
    c.set_defaults(func=_calibrate)
    ex = sub.add_parser("export", help="write a profile's trained ensemble to ONNX with a JSON sidecar (input, "
                                       "preprocessing, classes, cut, provenance) for C++ (ONNX Runtime, SOFIE)")
    ex.add_argument("--profile", default="default")
    ex.add_argument("--variant", default=None, help="a kept variant network instead, e.g. depth_matched")
    ex.add_argument("--output", default=None, help="ONNX file (default results/<profile>/newsnet/export/newsnet.onnx)")
    ex.set_defaults(func=_export)
    pr = sub.add_parser("predict", help="score scan files with trained networks (ensemble mean), streaming")
    pr.add_argument("--model", action="append", required=True, help=".keras file; repeat for an ensemble")
    pr.add_argument("--input", nargs="+", required=True, help="scan files (format_version 1)")
    pr.add_argument("--output", required=True, help="CSV of per-event scores (appended; resumes)")
    pr.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                    help="a bad file stops the run (default) or is skipped; rows already written stay")
    pr.add_argument("--classes", default=None,
                    help="the networks' classes, comma-separated, e.g. C30keV,C100keV,fog (default: the network.json "
                         "the fit saved beside them; must agree with it)")
    pr.add_argument("--engine", choices=["auto", "keras", "onnx"], default="auto",
                    help="auto (default): the faster of the two on this machine, measured once per machine and "
                         "architecture (EMULSION_ENGINE=keras|onnx overrides); keras; or onnx: ONNX Runtime on the "
                         "ensemble exported once per machine (log-odds within 1e-4 of Keras')")
    pr.add_argument("--cluster", default=None,
                    help="score the files in parallel: local:N, tcp://host:port (one task per file, each worker "
                         "loading the networks once; the same output as without); default here, in turn")
    pr.set_defaults(func=_predict)
    from emulsion_core.config.samples import SAMPLES, SCANS
    cv = sub.add_parser("convert", help="convert a libDMRoot run (ROOT file, best-focus grain list) "
                        "to format_version 1")
    cv.add_argument("run", help="libDMRoot run file with raw frames (dm_tracks_cl.dm.root)")
    cv.add_argument("--grains", required=True, help="best-focus grain list (yandex_bfcl.txt)")
    cv.add_argument("--output", required=True, help="scan file to write, e.g. data/myscans/C100keV_rot0.h5 "
                    "(never overwritten)")
    cv.add_argument("--sample", required=True, choices=SAMPLES)
    cv.add_argument("--scan", required=True, choices=SCANS)
    cv.add_argument("--rotation-deg", type=float, default=None, help="emulsion rotation (default: from --scan)")
    cv.add_argument("--area", default=None, help="area label (default: test for the test scan, else train)")
    cv.add_argument("--beam-phi-deg", type=float, default=None,
                    help="beam direction in the stage frame, degrees (default: the rotation)")
    cv.add_argument("--energy-kev", type=float, default=None, help="ion energy (default: from --sample)")
    cv.add_argument("--pixel-size-nm", type=float, default=None,
                    help="pixel pitch, nm, where the RunHeader cannot be read (2017 library)")
    cv.add_argument("--frame-width", type=int, default=None, help="camera frame columns, idem")
    cv.add_argument("--frame-height", type=int, default=None, help="camera frame rows, idem")
    cv.set_defaults(func=_convert)
    rf = sub.add_parser("references", help="compare a finished run's named numbers (Table 1, cuts, cut flow, audit, "
                        "search, architectures) with tests/references/<profile>.json, within their stated tolerances")
    rf.add_argument("--profile", required=True, help="profile name (its results under the output root)")
    rf.add_argument("--reference", default=None, help="default: tests/references/<profile>.json")
    rf.add_argument("--refresh", action="store_true", help="rewrite the reference from the current results")
    rf.set_defaults(func=_references)
    o = sub.add_parser("onednn", help="self-test TensorFlow's oneDNN convolutions on this machine (cached); "
                                      "prints on or off (off: run with TF_ENABLE_ONEDNN_OPTS=0)")
    o.add_argument("--retest", action="store_true", help="run the self-test again instead of reading its cache")
    o.set_defaults(func=_onednn)
    return ap


def main(argv=None) -> int:
    """Run one subcommand; a profile, data-format or ownership error prints one line, exit 2."""
    args = parser().parse_args(argv)
    from emulsion_core.config.profiles import ProfileError
    from emulsion_core.formats.hdf5 import DataFormatError
    from emulsion_core.formats.ownership import ForeignFilesError
    try:
        return args.func(args)
    except (ProfileError, DataFormatError, ForeignFilesError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

