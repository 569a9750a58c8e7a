"""``python -m serving.shipper``: same as ``kube-sentiment ship``."""

import sys

from serving.shipper.main import main

if __name__ == "__main__":
    sys.exit(main())
