"""``reports/<profile>/index.html``: what ran (profile, seed, commit, package versions) and links."""

from __future__ import annotations

import html
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from emulsion_core.networks import onednn_guard
from emulsion_core.storage import paths
from emulsion_core.config.profiles import Profile

PACKAGES = ("emulsion-dl", "numpy", "scipy", "pandas", "h5py", "matplotlib", "scikit-learn",
            "scikit-optimize", "tensorflow-cpu", "tensorflow", "keras", "papermill", "nbval")


def git_commit() -> str:
    """Commit of the checkout (with ``-dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_index(profile: Profile, notebooks: list, durations: dict | None = None) -> Path:
    """Write the index page listing the run's provenance (where it ran: :mod:`cluster`) and every
    report and figure."""
    from emulsion_core.app import cluster
    folder = paths.reports_dir(profile.name)
    figures = sorted(paths.figures_dir(profile.name).glob("*.png"))
    durations = durations or {}
    esc = html.escape
    rows = "".join(
        f"<tr><td><a href='{esc(nb)}.html'>{esc(nb)}</a></td><td><a href='{esc(nb)}.ipynb'>notebook</a></td>"
        f"<td>{esc(str(durations.get(nb, '')))}</td></tr>" for nb in notebooks)
    figs = "".join(f"<li><a href='{esc(_rel(f, folder))}'>{esc(f.stem)}</a> "
                   f"(<a href='{esc(_rel(f.with_suffix('.pdf'), folder))}'>pdf</a>)</li>" for f in figures)
    versions = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in package_versions().items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>emulsion-dl: {esc(profile.name)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td{{padding:2px 10px}}</style></head><body>
<h1>emulsion-dl report: profile <code>{esc(profile.name)}</code></h1>
<p>{esc(profile.description)}</p>
<table><tr><td>profile</td><td>{esc(profile.name)} ({esc(profile.path)})</td></tr>
<tr><td>seed</td><td>{profile.seed}</td></tr><tr><td>dataset</td><td>{esc(profile.dataset)}</td></tr>
<tr><td>git commit</td><td>{esc(git_commit())}</td></tr>
<tr><td>TensorFlow</td><td>{esc(onednn_guard.describe())}</td></tr>
<tr><td>cluster</td><td>{esc(cluster.where(profile))} (each notebook prints its cluster's dashboard address)</td></tr>
<tr><td>written</td><td>{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</td></tr></table>
<h2>Notebooks</h2><table><tr><th>report</th><th>executed</th><th>run time (s)</th></tr>{rows}</table>
<h2>Figures</h2><ul>{figs}</ul>
<h2>Package versions</h2><table>{versions}</table></body></html>"""
    path = folder / "index.html"
    path.write_text(page)
    return path


def render_html(notebooks) -> list[Path]:
    """Render each executed notebook (``.ipynb`` path) to HTML beside it, without the code cells (what
    ``jupyter nbconvert --to html --no-input`` writes), all in this one process: the command line
    costs ~5 s of start-up per notebook. Returns the HTML paths."""
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    written = []
    for notebook in map(Path, notebooks):
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                              resources={"metadata": {"name": notebook.stem,
                                                                      "path": str(notebook.parent)}})
        out = notebook.with_suffix(".html")
        out.write_text(body, encoding="utf-8")
        written.append(out)
    return written


def publish(profile: Profile, notebooks: list, durations: dict | None = None) -> Path:
    """Render those of ``notebooks`` (names) executed in ``reports/<profile>/`` to HTML and write the
    index listing them all; returns the index's path."""
    folder = paths.reports_dir(profile.name)
    render_html([folder / f"{nb}.ipynb" for nb in notebooks if (folder / f"{nb}.ipynb").exists()])
    return write_index(profile, notebooks, durations)


def _rel(path: Path, start: Path) -> str:
    import os
    return os.path.relpath(path, start)
