"""Mutants of scenario files, for fuzzing everything that reads them.

:func:`mutant` takes a scenario's text and a seeded random source and changes it the way a
person editing it (or a careless generator) might: a line dropped, doubled, moved, taken
from another scenario; a word swapped for another of its kind (process, region, handle,
number, operation); a file cut short; a character changed. The result is often not a
valid scenario: every reader must then say why at file:line:column, and never fail with a
traceback.
"""

from __future__ import annotations

import random
import re

_WORDS: dict[str, tuple[str, ...]] = {
    "proc": ("P0", "P1", "P2", "P3"),
    "region": ("A", "B", "C"),
    "handle": ("pipe", "buf", "h", "x", "seen"),
    "op": ("write", "read", "touch", "fork", "exit", "munmap", "mprotect", "mremap",
           "madvise", "vmsplice", "pin", "unpin", "dma-write", "dma-read", "dio-read",
           "dio-write", "peek", "poke", "force-write", "split", "migrate", "mmap"),
    "number": ("0", "1", "2", "5", "15", "16", "511", "512", "4096"),
    "advice": ("dontfork", "wipeonfork", "pageout", "dontneed", "hugepage", "collapse",
               "mergeable", "populate-read"),
}
_CLASS = [(re.compile(r"^P\d+$"), "proc"), (re.compile(r"^[A-Z]$"), "region"),
          (re.compile(r"^\d+$"), "number")]
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")


def _kind(word: str) -> str | None:
    for rx, kind in _CLASS:
        if rx.match(word):
            return kind
    for kind, words in _WORDS.items():
        if word in words:
            return kind
    return None


def mutant(text: str, rng: random.Random, donors: list[str] | None = None) -> str:
    """One mutant of *text* (1 to 3 changes); *donors*: other scenarios to take lines
    from."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        lines = _one(lines, rng, donors or [text])
    return "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")


def _one(lines: list[str], rng: random.Random, donors: list[str]) -> list[str]:
    if not lines:
        return [rng.choice(rng.choice(donors).splitlines() or [""])]
    i = rng.randrange(len(lines))
    what = rng.randrange(8)
    out = list(lines)
    if what == 0:
        del out[i]
    elif what == 1:
        out.insert(i, out[i])
    elif what == 2:
        j = rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    elif what == 3:
        donor = rng.choice(donors).splitlines()
        if donor:
            out.insert(i, rng.choice(donor))
    elif what in (4, 5):
        out[i] = _swap_word(out[i], rng)
    elif what == 6:
        cut = rng.randrange(len(out[i]) + 1)
        out = [*out[:i], out[i][:cut]]
    else:
        line = out[i]
        pos = rng.randrange(len(line) + 1)
        ch = rng.choice(' "[]..->@#0123456789PAbx\t\u00e9')
        out[i] = line[:pos] + ch + line[pos + rng.randint(0, 1):]
    return out


def _swap_word(line: str, rng: random.Random) -> str:
    words = list(_TOKEN.finditer(line))
    if not words:
        return line
    m = rng.choice(words)
    kind = _kind(m.group())
    new = rng.choice(_WORDS[kind]) if kind else rng.choice(_WORDS[rng.choice(list(_WORDS))])
    return line[:m.start()] + new + line[m.end():]
