"""Barycenter shift of polarised images: the experiment's conventional track estimator.

As the polariser turns, the brightness barycenter of a multi-grain track moves (its grains
resonate at different angles), while a single round grain stays put (physics.md b.3-b.5):

- barycenter of polarisation p: background B_p and noise s_p from the image border (3 px,
  one 3-sigma clipping pass), keep pixels above B_p + ``k_sigma`` s_p, and take the connected
  cluster *linked to the event's grain*, as the experiment links each polarisation's cluster to
  its grain (physics.md b.1-b.3): the grain centre is the barycenter of the main cluster of the
  unpolarised (mean) image, and the linked cluster is the one holding the brightest
  above-threshold pixel within ``link_px`` (the optical resolution, 7 px = 190 nm) of it. Its
  pixels are weighted by I - B_p. No such pixel: the polarisation has no cluster (NaN), and the
  experiment's selection drops the event (all 8 polarisations required, a.7); so does a linked
  cluster of fewer than ``MIN_CLUSTER_PX`` pixels (camera noise). Everything is
  searched in the central ``search_px`` x ``search_px`` pixels (28 px = 770 nm by default);
- barshift: the largest distance between any two of the P barycenters (the diameter of the
  barycenter cloud), nm;
- direction phi: the angle of the pair that realises it, axial, in (-90, 90] degrees, measured
  from the image x axis (columns) towards y (rows); 0 is along the beam in ``rot0`` scans.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from emulsion_core.measure.clusters import cluster_moments

BORDER_PX = 3


def _border_index(h: int, w: int, b: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = True, True, True, True
    return np.flatnonzero(mask)


def background_per_image(images: np.ndarray, border_px: int = BORDER_PX):
    """Background and noise of each image from its border, (N, P) ADU each.

    Mean and standard deviation of the border ring after one 3-sigma clipping pass (removes
    the tail of an event reaching the border).
    """
    n, p, h, w = images.shape
    ring = images.reshape(n, p, h * w)[..., _border_index(h, w, border_px)].astype(np.float32)
    k = ring.shape[-1]
    mean = ring.sum(axis=-1) / k
    std = np.sqrt(np.maximum((ring * ring).sum(axis=-1) / k - mean * mean, 0.0))
    keep = ring <= (mean + 3 * std)[..., None]
    cnt = keep.sum(axis=-1)
    ring *= keep
    mean = ring.sum(axis=-1) / cnt
    var = (ring * ring).sum(axis=-1) / cnt - mean * mean
    return mean, np.sqrt(np.maximum(var * cnt / np.maximum(cnt - 1, 1), 0.25))


LINK_PX = 7.0  # optical resolution (~190 nm): a polarisation's cluster this close to the grain is its own
MIN_CLUSTER_PX = 4  # a linked cluster smaller than this is camera noise, not the grain


def barycenters(images: np.ndarray, k_sigma: float = 3.0, search_px: int = 28, chunk: int = 128,
                threads: int = 2, link_px: float = LINK_PX) -> np.ndarray:
    """Brightness barycenter of the cluster linked to the grain in each polarisation image.

    images : (N, P, H, W) camera counts. Returns (N, P, 2) float, pixels, (x = column,
    y = row); NaN where nothing rises above the threshold. Chunks of events run on
    ``threads`` threads (NumPy and SciPy release the GIL in the heavy loops).
    """
    out = np.empty(images.shape[:2] + (2,), dtype=np.float64)
    starts = range(0, len(images), chunk)

    def work(a):
        out[a:a + chunk] = _barycenters(images[a:a + chunk], k_sigma, search_px, link_px)

    if threads > 1 and len(images) > chunk:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, starts))
    else:
        for a in starts:
            work(a)
    return out


def _barycenters(images: np.ndarray, k_sigma: float, search_px: int, link_px: float) -> np.ndarray:
    n, p, full_h, full_w = images.shape
    m = n * p
    bkg, noise = background_per_image(images)
    y0, x0 = max((full_h - search_px) // 2, 0), max((full_w - search_px) // 2, 0)
    window = images[:, :, y0:full_h - y0, x0:full_w - x0]
    h, w = window.shape[-2:]
    excess = window.reshape(m, h, w).astype(np.float32)
    excess -= bkg.reshape(-1)[:, None, None]
    threshold = (k_sigma * noise).reshape(-1)
    # the grain: main cluster of the unpolarised image (noise of a mean of P frames)
    merged = excess.reshape(n, p, h, w).mean(axis=1)
    grain = cluster_moments(merged, k_sigma * np.sqrt((noise**2).mean(axis=1) / p))
    ys, xs = np.mgrid[0:h, 0:w]
    near = (xs - grain["x"][:, None, None]) ** 2 + (ys - grain["y"][:, None, None]) ** 2 <= link_px**2  # (n, h, w)
    candidate = (excess > threshold[:, None, None]).reshape(n, p, h * w) & near.reshape(n, 1, h * w)
    masked = np.where(candidate, excess.reshape(n, p, h * w), -np.inf)
    seed = np.where(candidate.any(axis=-1), masked.argmax(axis=-1), -1).reshape(m)
    mom = cluster_moments(excess, threshold, seed=seed)
    small = mom["npx"] < MIN_CLUSTER_PX
    return np.where(small[:, None], np.nan, np.stack([mom["x"] + x0, mom["y"] + y0], axis=-1)).reshape(n, p, 2)


def _diameter(bc: np.ndarray):
    """Largest pairwise distance of each barycenter cloud and the pair realising it."""
    p = bc.shape[1]
    i, j = np.triu_indices(p, k=1)
    d = bc[:, j, :] - bc[:, i, :]  # (N, pairs, 2)
    dist = np.hypot(d[..., 0], d[..., 1])
    best = np.nanargmax(np.where(np.isnan(dist), -1.0, dist), axis=1)
    rows = np.arange(len(bc))
    return dist[rows, best], d[rows, best], i[best], j[best]


def barshift(images: np.ndarray, pixel_size_nm: float, k_sigma: float = 3.0) -> np.ndarray:
    """Barycenter shift: diameter of the P barycenters, (N,) float, nm."""
    return conventional_variables(images, pixel_size_nm, k_sigma)["barshift_nm"].to_numpy()


def direction(images: np.ndarray, k_sigma: float = 3.0) -> np.ndarray:
    """Track direction phi from the barycenter movement, (N,) float, degrees in (-90, 90]."""
    return conventional_variables(images, 1.0, k_sigma)["phi_deg"].to_numpy()


def conventional_variables(images: np.ndarray, pixel_size_nm: float, k_sigma: float = 3.0,
                           polarisation_deg=None) -> pd.DataFrame:
    """Barshift (nm), direction phi (deg), the pair's polariser angles and the path/regularity.

    Columns: ``barshift_nm``, ``phi_deg``, ``pol1_deg``, ``pol2_deg``, ``path_nm`` (closed polygon
    through the barycenters in polariser order), ``regularity`` (path / barshift, 2 for a
    back-and-forth motion along a line), ``n_missing`` (images with no cluster).
    """
    bc = barycenters(images, k_sigma)
    p = bc.shape[1]
    pol = np.asarray(polarisation_deg if polarisation_deg is not None else np.arange(p) * 180.0 / p)
    dist, vec, i, j = _diameter(bc)
    phi = np.degrees(np.arctan2(vec[:, 1], vec[:, 0]))
    phi = 90.0 - np.mod(90.0 - phi, 180.0)  # axial, (-90, 90]
    step = np.diff(np.concatenate([bc, bc[:, :1]], axis=1), axis=1)
    path = np.hypot(step[..., 0], step[..., 1]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        regularity = path / dist
    return pd.DataFrame({
        "barshift_nm": dist * pixel_size_nm, "phi_deg": phi, "pol1_deg": pol[i], "pol2_deg": pol[j],
        "path_nm": path * pixel_size_nm, "regularity": regularity,
        "n_missing": np.isnan(bc[..., 0]).sum(axis=1),
    })
