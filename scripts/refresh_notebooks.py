"""Re-execute the committed notebooks on the smoke profile and store their outputs in place.

nbval compares a fresh run against these outputs, so run this after changing a notebook or
anything that changes its printed numbers:  .venv/bin/python scripts/refresh_notebooks.py [NB...]
Papermill's run metadata (timestamps, durations) is stripped so re-runs give clean diffs.
"""

import os
import sys
from pathlib import Path

import nbformat
import papermill

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def refresh(path: Path) -> None:
    papermill.execute_notebook(str(path), str(path), kernel_name="python3", cwd=str(NOTEBOOKS),
                               progress_bar=False, parameters={"profile": "smoke"})
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    cells = []
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue  # papermill's copy of the parameters: the defaults already say smoke
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        cells.append(cell)
    nb.cells = cells
    nbformat.write(nb, path)
    print(f"refreshed {path.name}")


if __name__ == "__main__":
    os.environ.update(TQDM_DISABLE="1", PYTHONHASHSEED="0")
    targets = [Path(a) for a in sys.argv[1:]] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for nb in targets:
        refresh(nb)
