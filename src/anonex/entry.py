"""The ``anonex`` console script: ``anonex page-types`` goes straight to its own argument
parser, so that it starts as fast as the C tool it replaces (no typer, rich, explorer or
model imports); every other command goes to :mod:`anonex.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["page-types"]:
        from anonex.pagetypes.cli import main as page_types

        sys.exit(page_types(sys.argv[2:]))
    from anonex.cli import main as cli_main

    cli_main()


if __name__ == "__main__":  # pragma: no cover
    main()
