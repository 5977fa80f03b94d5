"""File formats: the HDF5 scan files every consumer reads (``hdf5``), ``splits.csv`` (``splits``),
who owns the files of a data folder (``ownership``), and the experiment's libDMRoot ROOT files
read with uproot (``rootio``) and converted to scans (``convert``)."""
