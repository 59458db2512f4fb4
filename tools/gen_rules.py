"""Rewrite the generated block of ``Rules`` in ``src/anonex/kernel/versions.py``: one
``name: bool`` declaration per row of ``BOUNDARIES`` (with the CVEs the rule fixes), so
that mypy knows every rule and rejects a misspelt one. ``python tools/gen_rules.py``
(``--check``: only say whether the block is up to date; exit 1 if not)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "src" / "anonex" / "kernel" / "versions.py"
BLOCK = re.compile(r"(    # --- generated from BOUNDARIES[^\n]*\n)(.*?)(    # --- end of generated "
                   r"block ---\n)", re.S)


def generated() -> str:
    from anonex.kernel.versions import BOUNDARIES

    return "".join(f"    {b.name}: bool" + (f"  # fixes {', '.join(b.cves)}" if b.cves else "")
                   + "\n" for b in BOUNDARIES)


def main() -> int:
    text = FILE.read_text()
    m = BLOCK.search(text)
    if m is None:
        print(f"{FILE}: no generated block", file=sys.stderr)
        return 2
    want = generated()
    if m.group(2) == want:
        return 0
    if "--check" in sys.argv:
        print(f"{FILE}: the generated block is out of date (python tools/gen_rules.py)")
        return 1
    FILE.write_text(text[:m.start(2)] + want + text[m.end(2):])
    return 0


if __name__ == "__main__":
    sys.exit(main())
