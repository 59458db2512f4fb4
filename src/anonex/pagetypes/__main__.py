"""``python -m anonex.pagetypes [options]``: ``anonex page-types`` without the console script."""

from __future__ import annotations

import sys

from anonex.pagetypes.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
