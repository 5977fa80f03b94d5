"""Cluster measurement on event images: background, threshold, npx, volume, brightness, peaks.

What the scanning software stores per event, measured on the crops themselves so that
simulated scans and real crops without those columns get the same definitions
(physics.md b.3, b.7-b.9):

- the unpolarised image is the mean of the polarisation images (the experiment's merged image);
- background B = the median of the crop's border (3 px wide), noise s = that median minus the
  border's 15.9 % quantile (the border is free of the event unless it is large dust);
- the cluster is the connected set of pixels above B + 3 s sqrt(P) that contains the maximum,
  i.e. 3 sigma of one frame's noise, as the online software thresholds each frame;
- ``npx`` its pixel count, ``volume`` the summed brightness above B over the cluster and all
  polarisations (ADU), ``brightness_max`` the largest raw pixel over all polarisations (ADU),
  ``brightness_mean`` the mean over the cluster (ADU, includes background, like vol/npx);
- ``n_pol`` the polarisations in which a cluster is linked to the grain (see
  :func:`emulsion_core.barshift.barycenters`); the experiment keeps events with all of them;
- ``n_peaks`` the optically resolved maxima of the smoothed unpolarised image: local maxima
  within ``peak_radius_px`` (3 px: grains one PSF FWHM, ~6 px, apart are resolved, b.9) that
  rise above B + ``peak_sigma`` s and above ``peak_fraction`` of the main peak (a dimmer or
  defocused neighbour counts too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

try:
    import cc3d
except ImportError:  # pragma: no cover - optional speed-up
    cc3d = None

FEATURE_COLUMNS = ("npx", "volume", "brightness_max", "brightness_mean", "peak_adu", "n_peaks",
                   "background_adu", "noise_adu", "n_pol")


def label_stack(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of each image of a (M, H, W) boolean stack; labels unique across
    images (0 = background). Uses connected-components-3d when installed (2-3x faster than
    SciPy): the images are stacked with an empty row between them, so none touch."""
    m, h, w = mask.shape
    if cc3d is not None:
        padded = np.zeros((m, h + 1, w), dtype=bool)
        padded[:, :h] = mask
        labels = cc3d.connected_components(padded.reshape(m * (h + 1), w), connectivity=8)
        labels = labels.reshape(m, h + 1, w)[:, :h]
        return labels, int(labels.max())
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 2)
    return ndimage.label(mask, structure=structure)


def cluster_moments(excess: np.ndarray, threshold: np.ndarray, order: int = 1, seed: np.ndarray | None = None) -> dict:
    """Brightness moments of the connected cluster containing each image's maximum (or ``seed``).

    excess : (M, H, W) float, brightness above background; threshold : (M,) cut on it;
    seed : (M,) flat pixel index whose cluster is measured instead of the maximum's (-1: none).
    Returns (M,) arrays: ``npx``, ``w`` (summed excess), ``x``, ``y`` (barycenter, px, x =
    column), ``peak`` (maximum excess) and, for ``order=2``, the central second moments
    ``xx``, ``yy``, ``xy`` (px^2). Images with no pixel above threshold give npx 0 and NaN.
    Sums run over above-threshold pixels only (labels are unique across images).
    """
    m, h, w = excess.shape
    above = excess > threshold[:, None, None]
    labels, n_labels = label_stack(above)
    flat = labels.reshape(m, -1)
    imax = excess.reshape(m, -1).argmax(axis=1) if seed is None else np.maximum(seed, 0)
    main = flat[np.arange(m), imax]
    if seed is not None:
        main = np.where(seed >= 0, main, 0)
    idx = np.flatnonzero(above)
    lab = flat.reshape(-1)[idx]
    wgt = excess.reshape(-1)[idx].astype(np.float64)
    pix = idx % (h * w)
    px, py = (pix % w).astype(np.float64), (pix // w).astype(np.float64)

    def total(weights=None):
        return np.bincount(lab, weights=weights, minlength=n_labels + 1)[main]

    ok = main > 0
    out = {"npx": np.where(ok, total(), 0).astype(np.int32), "w": np.where(ok, total(wgt), 0.0),
           "peak": excess.reshape(m, -1)[np.arange(m), imax]}
    with np.errstate(invalid="ignore", divide="ignore"):
        wsum = np.where(ok, out["w"], np.nan)
        out["x"] = total(wgt * px) / wsum
        out["y"] = total(wgt * py) / wsum
        if order >= 2:
            out["xx"] = total(wgt * px * px) / wsum - out["x"] ** 2
            out["yy"] = total(wgt * py * py) / wsum - out["y"] ** 2
            out["xy"] = total(wgt * px * py) / wsum - out["x"] * out["y"]
    return out


def unpolarised(images: np.ndarray) -> np.ndarray:
    """Mean over polarisations, (N, H, W) float32 ADU, from (N, P, H, W) images."""
    return images.mean(axis=1, dtype=np.float32)


def background_and_noise(image: np.ndarray, border_px: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Background (median of the border) and noise (median - 15.9 % quantile), (N,) ADU each."""
    n, h, w = image.shape
    b = border_px
    ring = np.concatenate([image[:, :b, :].reshape(n, -1), image[:, -b:, :].reshape(n, -1),
                           image[:, b:-b, :b].reshape(n, -1), image[:, b:-b, -b:].reshape(n, -1)], axis=1)
    m = ring.shape[1]
    k16, k50 = int(0.1587 * (m - 1)), (m - 1) // 2
    part = np.partition(ring, [k16, k50], axis=1)
    return part[:, k50], np.maximum(part[:, k50] - part[:, k16], 0.05)


def cluster_features(images: np.ndarray, k_sigma: float = 3.0, peak_radius_px: int = 3,
                     peak_sigma: float = 6.0, peak_fraction: float = 0.1) -> pd.DataFrame:
    """Per-event cluster features, see the module docstring.

    images : (N, P, H, W) raw camera counts. Returns a DataFrame with FEATURE_COLUMNS.
    """
    n = images.shape[0]
    u = unpolarised(images)
    b, s = background_and_noise(u)
    frame_noise = s * np.sqrt(images.shape[1])
    excess = u - b[:, None, None]
    mom = cluster_moments(excess, k_sigma * frame_noise)
    npx = mom["npx"]
    volume = mom["w"] * images.shape[1]
    bmean = np.where(npx > 0, b + mom["w"] / np.maximum(npx, 1), b)
    peak = mom["peak"]

    smooth = ndimage.gaussian_filter(u, sigma=(0, 1.0, 1.0), mode="nearest")
    size = 2 * peak_radius_px + 1
    local = smooth == ndimage.maximum_filter(smooth, size=(1, size, size), mode="nearest")
    height = smooth - b[:, None, None]
    main_height = height.reshape(n, -1).max(axis=1)
    strong = (height > (peak_sigma * s)[:, None, None]) & (height >= peak_fraction * main_height[:, None, None])
    n_peaks = (local & strong).reshape(n, -1).sum(axis=1)

    from .barshift import barycenters  # the barshift's own cluster linking (it imports this module)
    n_pol = np.isfinite(barycenters(images, k_sigma)[..., 0]).sum(axis=1)

    return pd.DataFrame({
        "npx": npx.astype(np.int32),
        "volume": volume.astype(np.float32),
        "brightness_max": images.reshape(n, -1).max(axis=1).astype(np.int32),
        "brightness_mean": bmean.astype(np.float32),
        "peak_adu": peak.astype(np.float32),
        "n_peaks": n_peaks.astype(np.int32),
        "background_adu": b.astype(np.float32),
        "noise_adu": s.astype(np.float32),
        "n_pol": n_pol.astype(np.int32),
    })
