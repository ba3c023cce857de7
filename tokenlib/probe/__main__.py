"""``python -m tokenlib.probe URL ...``: the probe without the ``tokenlib`` console script."""

from __future__ import annotations

import sys

from tokenlib.probe._cli import main

sys.exit(main())
