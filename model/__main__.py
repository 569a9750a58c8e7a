"""``python -m model``: same as ``kube-sentiment train``."""

import sys

from model.run import main

if __name__ == "__main__":
    sys.exit(main())
