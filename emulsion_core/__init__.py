"""emulsion-dl: the analysis suite of the NEWSdm directional dark-matter search with fine-grain
nuclear emulsions. Subpackages by job, each importing only those below it (pyproject.toml's
import-linter contracts; docs/architecture.md): ``app`` (command line, prepare, report),
``analyses`` (what the notebooks call: Table 1, conventional, NEWSnet, architectures, angular,
audit), ``figures``, ``networks`` (the only one that imports TensorFlow), ``data`` (a profile's
dataset) beside ``simulator`` (the physics-informed simulator), ``formats`` (HDF5 scans, splits,
libDMRoot conversion), ``measure`` (clusters, barshift, shape, cleaning), ``stats``, ``storage``
(paths, the result registry, provenance, atomic writes) and ``config`` (samples, the paper's
constants, the simulator's configuration, profiles). Importing the package imports nothing."""
