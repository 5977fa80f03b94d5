"""Imaging depth of a real scan's events: how far below the emulsion face the microscope looks.

A real scan records each grain's stage coordinate ``z_um``, not its depth in the emulsion. The
face the objective looks through is located per view from the silver nanoparticles on the
surface (physics.md a.5), the highest events of a view; the imaging depth is the distance below
it (um). ``convert`` writes it as the ``depth_um`` column, and the data layer derives it for a
scan file written without it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def imaging_depth_from_z(events: pd.DataFrame, min_events: int = 20) -> np.ndarray:
    """Imaging depth (um below the face the microscope looks through) of a real scan's events from
    their stage ``z_um``: the face is where the scan's highest events sit, the silver nanoparticles
    on the surface (physics.md a.5: the cleaning's z window excludes them), taken per view as the
    99th percentile of its events' z when the view holds ``min_events`` or more, else the scan's."""
    z = events["z_um"].astype(np.float64)
    face = np.full(len(z), z.quantile(0.99))
    if "view" in events:
        per_view = z.groupby(events["view"])
        faces = per_view.quantile(0.99).where(per_view.size() >= min_events)
        face = events["view"].map(faces).fillna(face[0] if len(face) else 0.0).to_numpy()
    return np.maximum(face - z.to_numpy(), 0.0).astype(np.float32)
