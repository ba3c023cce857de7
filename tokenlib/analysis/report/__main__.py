"""``python -m tokenlib.analysis.report`` (what ``make report`` runs)."""

import contextlib
import sys

from tokenlib.analysis.report._cli import main

with contextlib.suppress(KeyboardInterrupt):
    sys.exit(main())
sys.exit(130)
