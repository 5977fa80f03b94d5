"""The physics-informed simulator: what each event of a scan is and where (``layout``), its grains
(``grains``), their images through the microscope (``render``), the acquisition conditions per area
and view, never per class (``acquisition``), the occupancy rates (``occupancy``), the scan files
(``simulate``), and the fit of the free parameters to measured numbers (``calibrate``)."""
