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
  :func:`emulsion_core.measure.barshift.barycenters`); the experiment keeps events with all of them;
- ``n_peaks`` the optically resolved maxima of the smoothed unpolarised image: local maxima
  within ``peak_radius_px`` (3 px: grains one PSF FWHM, ~6 px, apart are resolved, b.9) that
  rise above B + ``peak_sigma`` s and above ``peak_fraction`` of the main peak (a dimmer or
  defocused neighbour counts too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from emulsion_core.measure.barshift import barycenters
from emulsion_core.measure.clusters import background_and_noise, cluster_moments, unpolarised

FEATURE_COLUMNS = ("npx", "volume", "brightness_max", "brightness_mean", "peak_adu", "n_peaks",
                   "background_adu", "noise_adu", "n_pol")


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
