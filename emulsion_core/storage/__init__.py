"""Where results live and whether they are current: the output folders (``paths``), the registry of
every result and figure file (``results``), atomic writes (``atomic``), provenance keys derived
from the code's own imports (``provenance``) and resumable JSON histories (``history``)."""
