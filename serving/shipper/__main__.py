"""``python -m serving.shipper``: same as ``kube-sentiment ship``."""

import sys

from serving.shipper.main import main

sys.exit(main())
