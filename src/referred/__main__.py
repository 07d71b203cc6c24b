"""``python -m referred``: the same command line as ``referred``."""

import sys

from referred.cli import main

sys.exit(main())
