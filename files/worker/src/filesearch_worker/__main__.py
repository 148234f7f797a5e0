"""``python -m filesearch_worker``."""

import sys

from filesearch_worker.cli import main

sys.exit(main())
