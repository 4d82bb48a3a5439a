"""``python -m mlops_dev``: the development commands (:mod:`mlops_dev.cli`)."""

import sys

from mlops_dev.cli import main

sys.exit(main())
