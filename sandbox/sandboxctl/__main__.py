"""Entry point: ``python -m sandboxctl`` (called by sandbox/ctl)."""

import sys

from .cli import main

sys.exit(main())
