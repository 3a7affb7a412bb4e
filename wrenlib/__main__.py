"""``python -m wrenlib`` is the ``wrenlib`` command."""

import sys

from .cli import main

sys.exit(main())
