"""``python -m control.drift``: same as ``kube-sentiment drift``."""

import sys

from control.drift.main import main

if __name__ == "__main__":
    sys.exit(main())
