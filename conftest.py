"""Test set-up: quiet, deterministic; for ``pytest --nbval notebooks`` run by hand, stderr is not compared
(tests/nbcompare.py, which the suite uses, skips it too).

At the repository root so that its hooks apply to both folders."""

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars (stderr) off in notebooks run by nbval
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collectstart(collector):
    """nbval: never compare stderr (TensorFlow start-up lines, warnings carry PIDs and paths)."""
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + ("stderr",)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def barycentres(images: np.ndarray, k_sigma: float = 3.0) -> np.ndarray:
    """Background-subtracted brightness barycentre of each polarisation image, (N, P, 2) px.

    A plain reference implementation for the tests (the analysis estimator lives in the core).
    Images with nothing above threshold give NaN.
    """
    img = images.astype(np.float64)
    n, p, h, w = img.shape
    border = np.concatenate([img[..., :3, :].reshape(n, p, -1), img[..., -3:, :].reshape(n, p, -1)], axis=-1)
    b = np.median(border, axis=-1)[..., None, None]
    s = np.std(border, axis=-1)[..., None, None]
    wgt = np.where(img > b + k_sigma * s, img - b, 0.0)
    tot = wgt.sum(axis=(-1, -2))
    ys, xs = np.mgrid[0:h, 0:w]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(wgt * xs).sum(axis=(-1, -2)) / tot, (wgt * ys).sum(axis=(-1, -2)) / tot], axis=-1)


# the smoke pipeline's file (~6 min, the longest) first: with the suite on two pytest-xdist workers
# (run_tests.sh, --dist loadfile) it then runs beside the other files instead of after them
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name != "test_pipeline.py")
