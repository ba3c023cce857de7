"""``python -m tokenlib.cli``: the same as the ``tokenlib`` console script."""

import sys

from tokenlib.cli import main

sys.exit(main())
