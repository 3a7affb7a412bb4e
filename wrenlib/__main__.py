"""``python -m wrenlib`` is the ``wrenlib`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a worker process of ``wrenlib execute --jobs`` imports it
    sys.exit(main())
