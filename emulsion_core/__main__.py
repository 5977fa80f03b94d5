"""``python -m emulsion_core ...``: the command line of :mod:`emulsion_core.app.cli`."""

import sys

from emulsion_core.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
