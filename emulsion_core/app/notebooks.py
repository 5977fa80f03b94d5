"""Run the chain's notebooks in order (``run_all.sh``): each executed with papermill into
``reports/<profile>/``, then all rendered to HTML and indexed (:mod:`report`).

One Python process drives them all: the ``papermill`` command line cost ~2.5 s of start-up per
notebook, and each notebook still gets its own fresh kernel. A notebook that fails (or whose
kernel dies: a crash in native code) stops the run at once with its error and the cell it came
from; what ran, itself included as far as it got, is rendered and indexed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from emulsion_core.config.profiles import Profile


def chain(folder, only: str | None = None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks of ``folder`` in order; only : comma-separated name prefixes."""
    notebooks = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        prefixes = [p for p in only.split(",") if p]
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(p) for p in prefixes)]
    return notebooks


def failed_cell(executed: Path) -> str | None:
    """The error and the source of the cell that raised it in an executed notebook, or None."""
    import nbformat
    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"  {out['ename']}: {out['evalue']}\n  in cell:\n    " + cell.source.replace("\n", "\n    ")
    return None


def run(profile: Profile, profile_file: str, folder, only: str | None = None, out=sys.stdout, err=sys.stderr) -> int:
    """Execute the chain for ``profile`` (its file ``profile_file``, passed to every notebook as
    the parameter ``profile``) from the notebooks of ``folder``; returns the exit status (0: all ran)."""
    import papermill

    from emulsion_core.app import report
    from emulsion_core.storage import paths
    folder = Path(folder).resolve()
    reports = paths.reports_dir(profile.name)
    os.environ["TQDM_DISABLE"] = "1"  # progress bars belong in the terminal and JupyterLab, not in the reports
    ran, durations = [], {}
    for notebook in chain(folder, only):
        name = notebook.stem
        print(f"== {name}", file=out, flush=True)
        executed, log = reports / f"{name}.ipynb", reports / f"{name}.log"
        t0 = time.monotonic()
        try:
            with _output_to(log):  # papermill's warnings and the kernel's own output, as the command line kept them
                papermill.execute_notebook(str(notebook), str(executed), parameters={"profile": profile_file},
                                           kernel_name="python3", cwd=str(folder), progress_bar=False)
        except Exception as error:  # noqa: BLE001  (any failure stops the chain, reported below)
            with open(log, "a") as f:
                f.write(f"{type(error).__name__}: {error}\n")
            if "DeadKernelError" in type(error).__name__ or "DeadKernelError" in str(error):
                print(f"run_all.sh: the kernel of notebook {name} died (a crash in native code; if TensorFlow's, see "
                      "emulsion_core/networks/onednn_guard.py and try TF_ENABLE_ONEDNN_OPTS=0)", file=err)
            print(f"run_all.sh: notebook {name} failed; its error:", file=err)
            print(failed_cell(executed) or f"  {type(error).__name__}: {str(error)[-3000:]}", file=err)
            print(f"(executed notebook: {executed}, log: {log})", file=err)
            durations[name] = round(time.monotonic() - t0)
            try:
                report.publish(profile, ran + [name], durations)
            except Exception as index_error:  # noqa: BLE001  (the notebook's error is the one to report)
                print(f"(the reports of this run could not be rendered: {index_error})", file=err)
            return 1
        durations[name] = round(time.monotonic() - t0)
        ran.append(name)
    index = report.publish(profile, ran, durations)
    print(f"report index: {index}", file=out)
    return 0


@contextlib.contextmanager
def _output_to(log: Path):
    """This process's standard output and error (file descriptors 1 and 2, which the kernel it
    starts inherits) written to ``log`` while inside."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
