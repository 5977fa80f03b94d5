"""The registry of what the analysis writes: every result file of a profile (under
``results/<profile>/``) and every figure (under ``figures/<profile>/``), with the notebook that
makes it. Code, notebooks, ``save_figure`` and the tests name a result by its key here, never by
a literal file name, so a file is renamed in one place."""

from __future__ import annotations

from pathlib import Path

from emulsion_core.storage import paths

# key: (file under results/<profile>/, the notebook that writes it, what it holds)
RESULTS = {
    "clean_events": ("clean_events.csv", "01", "events that pass cleaning (keys of the dataset's events)"),
    "cutflow": ("cutflow.csv", "01", "events removed by each cleaning cut, per sample"),
    "artefact_audit": ("artefact_audit.csv", "01", "AUCs of acquisition statistics between samples"),
    "conventional": ("conventional.csv", "02", "barshift, direction and shape variables per clean event"),
    "table1": ("table1.csv", "02", "Table 1 rows of every method (emulsion_core.analyses.table1)"),
    "barshift_threshold": ("barshift_threshold.json", "02", "the barshift cut, nm, with its 68 % interval"),
    "shape_threshold": ("shape_threshold.json", "06", "the ellipticity cut with its 68 % interval"),
    "newsnet_threshold": ("newsnet_threshold.json", "04", "NEWSnet's cut in log-odds with its 68 % interval"),
    "newsnet": ("newsnet", "03", "NEWSnet's folder: search history, fits, scores"),
    "search_history": ("newsnet/search_history.json", "03", "every search call: parameters, score, seed"),
    "final_fit": ("newsnet/final", "04", "the final fit's epochs and snapshot ensemble"),
    "seed_fits": ("newsnet/seeds", "04", "the extra seeds' fits"),
    "scores": ("newsnet/scores.csv", "04", "ensemble log-odds per validation and test event"),
    "member_logits": ("newsnet/member_logits.npy", "04", "(members, events, classes) logits"),
    "logs": ("logs", "03", "TensorBoard logs of the search folds and the fits: tensorboard --logdir results/<profile>/logs"),
    "architectures": ("newsnet/architectures.json", "04", "the architecture table's trained rows"),
    "onnx_export": ("newsnet/export", "04", "the final ensemble as ONNX (newsnet.onnx) with its JSON sidecar"),
    "variant_networks": ("newsnet/variants", "04", "the table's NEWSnet variants as .keras files (depth-matched: "
                         "what scores scans without depth effects)"),
}
# figure name (PNG and PDF under figures/<profile>/): the notebook that draws it
FIGURES = {
    "fig1_polarisation_strips": "01", "cleaning_variables": "01", "cleaning_depth": "01", "artefact_audit": "01",
    "fig2_angular_rotated_scans": "02", "fig3_barshift": "02", "fig5_angular_short_long": "02",
    "search_convergence": "03", "search_partial_dependence": "03", "search_evaluations": "03",
    "fig4_newsnet_efficiency_vs_reduction": "04", "newsnet_precision_recall_outputs": "04",
    "newsnet_misclassified": "04", "newsnet_score_vs_depth": "04",
    "fig6_selected_angular": "05",
    "shape_variables": "06", "conventional_efficiency_vs_reduction": "06",
}


def path(profile: str, key: str) -> Path:
    """Where the result ``key`` of :data:`RESULTS` of profile ``profile`` lives."""
    if key not in RESULTS:
        raise KeyError(f"no result {key!r} in emulsion_core.storage.results.RESULTS ({', '.join(RESULTS)})")
    where = paths.results_dir(profile) / RESULTS[key][0]
    where.parent.mkdir(parents=True, exist_ok=True)
    return where


def figure(profile: str, name: str, ext: str = "png") -> Path:
    """Where the figure ``name`` of :data:`FIGURES` is written (``ext``: png or pdf)."""
    if name not in FIGURES:
        raise KeyError(f"no figure {name!r} in emulsion_core.storage.results.FIGURES: add it there first")
    return paths.figures_dir(profile) / f"{name}.{ext}"
