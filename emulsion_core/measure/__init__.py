"""Measurements on event images, with no file or network in sight: connected clusters and image
statistics (``clusters``), the scanning software's cluster features (``features``), the
barycentre shift and direction (``barshift``), the ellipse fit of the shape analysis (``shape``)
and the cleaning cuts with their cut flow (``cleaning``)."""
