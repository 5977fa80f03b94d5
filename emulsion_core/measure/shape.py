"""Shape analysis: ellipse fit of the unpolarised image from its second moments ([P21] ref. [11]).

The unpolarised image is the mean of the polarisation images (the experiment's merged image).
Above the background B (median of the border) the pixels of the cluster containing the
maximum (threshold 3 sigma of a single frame's noise, as for ``npx``) are weighted by I - B;
their central second moments give the ellipse (physics.md b.7):

  lambda_1,2 = (mu_xx + mu_yy)/2 +- sqrt(((mu_xx - mu_yy)/2)^2 + mu_xy^2)
  major = 4 sqrt(lambda_1), minor = 4 sqrt(lambda_2)  (full axes of the 2-sigma ellipse)
  angle = 0.5 atan2(2 mu_xy, mu_xx - mu_yy),  ellipticity = sqrt(lambda_1 / lambda_2).

Cutting at a threshold shrinks the moments; for a Gaussian spot cut at the contour where it
falls to T (u = ln(peak / T)) both are reduced by f(u) = 1 - u e^-u / (1 - e^-u), which is
divided out, so an analytic elliptical Gaussian gets its own sigmas back.
The shape-analysis selection ([P21] ref. [11]: "ellipticity cuts for optical images in
unpolarised light") keeps events whose ellipticity exceeds a threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emulsion_core.measure.clusters import background_and_noise, cluster_moments, unpolarised


def truncation_factor(u: np.ndarray) -> np.ndarray:
    """Second-moment fraction kept by cutting a 2D Gaussian at exp(-u) of its peak."""
    u = np.asarray(u, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        f = 1.0 - u * np.exp(-u) / (1.0 - np.exp(-u))
    return np.where(u > 1e-6, f, np.nan)


def ellipse_fit(images: np.ndarray, pixel_size_nm: float, k_sigma: float = 3.0) -> pd.DataFrame:
    """Ellipse of each event's unpolarised image.

    images : (N, P, H, W) camera counts. Returns a DataFrame with ``major_nm``, ``minor_nm``
    (full axes), ``ellipticity`` (major/minor), ``angle_deg`` (long axis from the x axis
    towards y, in (-90, 90]), ``npx`` and ``x_px``, ``y_px`` (centre).
    """
    u = unpolarised(images)
    b, s = background_and_noise(u)
    threshold = k_sigma * s * np.sqrt(images.shape[1])
    mom = cluster_moments(u - b[:, None, None], threshold, order=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = truncation_factor(np.log(mom["peak"] / threshold))
        mxx, myy, mxy = mom["xx"] / f, mom["yy"] / f, mom["xy"] / f
        half = (mxx + myy) / 2
        root = np.sqrt(((mxx - myy) / 2) ** 2 + mxy**2)
        l1, l2 = half + root, np.maximum(half - root, 1e-12)
        angle = np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy))
        return pd.DataFrame({
            "major_nm": 4 * np.sqrt(l1) * pixel_size_nm, "minor_nm": 4 * np.sqrt(l2) * pixel_size_nm,
            "ellipticity": np.sqrt(l1 / l2), "angle_deg": 90.0 - np.mod(90.0 - angle, 180.0),
            "npx": mom["npx"], "x_px": mom["x"], "y_px": mom["y"],
        })
