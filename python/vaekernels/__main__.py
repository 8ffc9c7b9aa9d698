"""``python -m vaekernels``: the command line (see vaekernels.cli)."""
import sys

from .cli import main

sys.exit(main())
