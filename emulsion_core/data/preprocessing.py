"""Network input from polarisation images ([P21] sec. 3.2.1).

1. scale by the camera maximum: the file's ``camera_max`` attribute (255 for the 8-bit camera);
2. subtract each image's own median (the optical background differs between samples);
3. append the first polarisation after the last (180 deg = 0 deg: periodic boundary), 9 images;
4. during training only, transform all 9 images of an event by one random symmetry of the
   square pixel grid (``random_symmetry``: a rotation by 0, 90, 180 or 270 degrees, optionally
   followed by a mirror), so that no direction is learnt.

Why not the paper's rotations by any angle (15-degree steps, interpolated): interpolation
averages neighbouring pixels, which lowers the background-noise rms (to 0.68x with bilinear
weights at random angles) and smooths grains, in training images only; the network then sees
other image statistics in training than in evaluation. The 8 grid symmetries move pixels
without changing any value, so every pixel and noise statistic is exactly that of an unaugmented
image, and every event is shown in 8 orientations (a track at angle t appears at t + k 90 deg
and -t + k 90 deg), so neither the beam axis nor its perpendicular is preferred. As in the
paper, the polarisation order is left as it is (the images are rotated, not the polariser).

The images enter in the standard polarisation order (0, 22.5, ..., 157.5 deg), placed by the
file's ``polarisation_deg`` attribute. A polarisation missing from a scan is filled with zeros
(the slides' convention) with a warning. Both the order and the camera range come from the
file for every consumer (training, evaluation, notebooks, ``predict``): :func:`standard_counts`.
"""

from __future__ import annotations

import warnings

import numpy as np

from emulsion_core.config.samples import POLARISATIONS_DEG


def standard_polarisations(images: np.ndarray, polarisation_deg, source: str = "") -> np.ndarray:
    """Place the images of the listed polariser angles into the 8 standard slots.

    images : (N, P, H, W); polarisation_deg : (P,) angles. Missing slots are zeros (warned).
    """
    pol = [float(a) % 180.0 for a in polarisation_deg]
    if len(pol) == 8 and np.allclose(pol, POLARISATIONS_DEG):
        return images
    out = np.zeros((images.shape[0], 8) + images.shape[2:], dtype=images.dtype)
    for i, a in enumerate(pol):
        slot = int(round(a / 22.5)) % 8
        if abs(a - 22.5 * slot) > 1.0:
            raise ValueError(f"{source}: polariser angle {a} deg is not one of {POLARISATIONS_DEG}")
        out[:, slot] = images[:, i]
    missing = sorted(set(POLARISATIONS_DEG) - {22.5 * (int(round(a / 22.5)) % 8) for a in pol})
    if missing:
        warnings.warn(f"{source}: polarisation(s) {missing} deg missing, filled with zeros", stacklevel=2)
    return out


def standard_counts(images: np.ndarray, attrs: dict, camera_max: float | None = None, source: str = "") -> np.ndarray:
    """A scan file's images in the convention every consumer uses.

    images : (N, P, H, W) camera counts as stored; attrs : the file's attributes (its
    ``polarisation_deg`` and ``camera_max``). Returns (N, 8, H, W): the polarisations in the
    standard order (:func:`standard_polarisations`) and, when ``camera_max`` (ADU) is given, the
    counts rescaled from the file's range to it (rounded; uint8 up to 255, else uint16), so
    files of different cameras can share one array and one ``camera_max``.
    """
    out = standard_polarisations(images, attrs["polarisation_deg"], source)
    if camera_max is None:
        return out
    dtype = np.uint8 if camera_max <= 255 else np.uint16
    if float(attrs["camera_max"]) == float(camera_max):
        return out.astype(dtype, copy=False)
    scale = np.float32(float(camera_max) / float(attrs["camera_max"]))
    return np.rint(out.astype(np.float32) * scale).astype(dtype)


def preprocess(images: np.ndarray, camera_max) -> np.ndarray:
    """(N, 8, H, W) camera counts -> (N, 9, H, W, 1) float32 network input (steps 1-3).

    camera_max : float, ADU, the range of the file(s) the images come from (never assumed).
    """
    x = images.astype(np.float32) / np.float32(camera_max)
    n, p, h, w = x.shape
    med = np.median(x.reshape(n, p, h * w), axis=-1)
    x -= med[:, :, None, None]
    x = np.concatenate([x, x[:, :1]], axis=1)
    return x[..., None]


def rotate_events(x: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Rotate all images of event i by ``angles_deg[i]`` about the image centre (bilinear,
    reflect padding). x : (N, D, H, W, C); returns the same shape, float32."""
    n, d, h, w, c = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.radians(np.asarray(angles_deg, dtype=np.float32))[:, None, None]
    # source coordinates of each output pixel: inverse rotation
    xs = np.cos(a) * (xx - cx) + np.sin(a) * (yy - cy) + cx
    ys = -np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + cy
    xs, ys = _reflect(xs, w), _reflect(ys, h)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (xs - x0)[:, None, :, :, None], (ys - y0)[:, None, :, :, None]
    ev = np.arange(n)[:, None, None]

    def at(yi, xi):
        return x[ev, :, yi, xi].transpose(0, 3, 1, 2, 4)  # (N, D, H, W, C)

    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _reflect(coord: np.ndarray, size: int) -> np.ndarray:
    """Reflect coordinates into [0, size - 1] (mirror about the edge pixels' centres)."""
    period = 2 * (size - 1)
    c = np.mod(coord, period)
    return np.where(c > size - 1, period - c, c)


def grid_symmetry(x: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    """All images of the events ``x`` (N, D, H, W, C) rotated by ``k`` x 90 degrees (as
    ``rotate_events``: +90 deg maps image coordinates (x, y) -> (-y, x) about the centre), then
    mirrored left-right when ``mirror``. Pixels are moved, never interpolated. H must equal W."""
    y = np.rot90(x, k=-int(k), axes=(2, 3))
    return y[:, :, :, ::-1] if mirror else y


def random_symmetry(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation: one of the 8 symmetries of the square grid per event, uniform,
    shared by all its images. x : (N, D, H, W, C) float32; returns a new array of that shape
    whose every image holds the same pixel values as the input image, moved."""
    choice = rng.integers(0, 8, len(x))
    out = np.empty_like(x)
    for c in np.unique(choice):  # 8 groups at most: vectorised over the events of each
        sel = choice == c
        out[sel] = grid_symmetry(x[sel], c % 4, c >= 4)
    return out


def unpolarised_input(images: np.ndarray) -> np.ndarray:
    """(N, P, H, W) camera counts with every polarisation replaced by their mean (rounded, the
    dtype kept): the input of a network that sees no polarisation dependence."""
    mean = np.rint(images.mean(axis=1, keepdims=True, dtype=np.float32)).astype(images.dtype)
    return np.repeat(mean, images.shape[1], axis=1)


def shuffled_polarisations(images: np.ndarray, seed: int) -> np.ndarray:
    """(N, P, H, W) with each event's P polarisation images in its own random order (seeded):
    the images and their brightness kept, the angle each was taken at lost."""
    rng = np.random.default_rng([seed, 11])
    order = np.argsort(rng.random(images.shape[:2]), axis=1)
    return np.take_along_axis(images, order[:, :, None, None], axis=1)
