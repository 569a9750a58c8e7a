"""``python -m model.drift``: same as ``kube-sentiment drift``."""

import sys

from model.drift.main import main

sys.exit(main())
