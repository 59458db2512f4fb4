"""Flag names the way ``tools/mm/page-types`` prints and parses them.

The names come from the one KPF table, :data:`anonex.procfs.kpageflags.KPF_TABLE`: every bit
that has a page-types letter gets a column of the symbolic flag string, in bit order, and
its long name is accepted by ``-b`` and ``-d``. Bits without a letter (39 UNCACHED, 42
ARCH_3 and the free slots) have no column; page-types refuses to print a word that has one
of them set, and so does :func:`symbolic` (:class:`UnnamedBit`).

Parsing follows page-types: a flag name may be abbreviated to any prefix and the first
name in bit order that starts with it wins (``a`` is ``active``, ``anon`` is
``anonymous``); ``compound`` (or a prefix of it of at most 8 characters) means both
compound bits; a number (``0x10``, ``16``, ``020``) means those bits. Unlike page-types,
text that is neither a name nor a whole number is an error instead of a silent 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from anonex.pagetypes.errors import PageTypesError
from anonex.procfs.kpageflags import KPF_TABLE

U64 = (1 << 64) - 1
#: ``-b`` with a plain list: "any of these bits" is stored as this ``bits`` value.
ALL_BITS = U64
#: Bits 32-47: kernel-hacker bits (and anon_exclusive), hidden without ``-r``.
HACKER_BITS = 0xFFFF << 32
#: Bits 48-63: page-types' own slots for overloaded and pagemap-derived flags.
OVERLOADED_BITS = 0xFFFF << 48


@dataclass(frozen=True, slots=True)
class Named:
    """A bit that page-types shows: its number, letter and long name."""

    bit: int
    letter: str
    name: str


NAMED: tuple[Named, ...] = tuple(sorted(
    (Named(b.bit, b.letter, b.tool_name) for b in KPF_TABLE
     if b.letter is not None and b.tool_name is not None),
    key=lambda n: n.bit))
#: All bits that have a page-types name.
NAMED_MASK = sum(1 << n.bit for n in NAMED)
#: Width of the symbolic flag string (one column per named bit).
WIDTH = len(NAMED)

_BIT = {n.name: n.bit for n in NAMED}
COMPOUND_BITS = (1 << _BIT["compound_head"]) | (1 << _BIT["compound_tail"])


def bit_of(name: str) -> int:
    """The bit number of the page-types long name *name* (``KeyError`` if none)."""
    return _BIT[name]


class UnnamedBit(PageTypesError):
    """A word has a bit set that page-types has no name (and no column) for."""

    def __init__(self, word: int, bit: int) -> None:
        super().__init__(f"flag word 0x{word:016x} has bit {bit} set, which page-types has no "
                         f"name for (named bits: {describe_mask(NAMED_MASK)}); use --json to "
                         "see such words", exit_code=1)
        self.word = word
        self.bit = bit


def describe_mask(mask: int) -> str:
    """Bit numbers of *mask* as compact ranges, e.g. ``0-26,32-38``."""
    bits = [b for b in range(64) if mask >> b & 1]
    parts: list[str] = []
    i = 0
    while i < len(bits):
        j = i
        while j + 1 < len(bits) and bits[j + 1] == bits[j] + 1:
            j += 1
        parts.append(str(bits[i]) if i == j else f"{bits[i]}-{bits[j]}")
        i = j + 1
    return ",".join(parts)


@lru_cache(maxsize=65536)
def symbolic(word: int) -> str:
    """page-types' symbolic flags: one letter or ``_`` per named bit, in bit order.

    Raises :class:`UnnamedBit` when *word* has a bit without a name (page-types stops with
    "unknown flag bit" there)."""
    extra = word & ~NAMED_MASK & U64
    if extra:
        raise UnnamedBit(word, (extra & -extra).bit_length() - 1)
    return "".join(n.letter if word >> n.bit & 1 else "_" for n in NAMED)


def names_of(word: int) -> list[str]:
    """The long names of the named bits set in *word*, in bit order."""
    return [n.name for n in NAMED if word >> n.bit & 1]


@lru_cache(maxsize=65536)
def long_names(word: int) -> str:
    """page-types' long symbolic flags: the names of the set bits, comma-separated."""
    return ",".join(names_of(word))


def unnamed_bits(word: int) -> list[int]:
    """The bits set in *word* that page-types has no name for."""
    extra = word & ~NAMED_MASK & U64
    return [b for b in range(64) if extra >> b & 1]


# -- numbers, flag names, bit specs, address specs -------------------------------------------

_NUMBER = re.compile(r"\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")


def parse_number(text: str, what: str = "number") -> int:
    """A C integer literal (decimal, ``0x`` hex, ``0`` octal) that fits in 64 bits."""
    m = _NUMBER.match(text)
    if m is None:
        raise PageTypesError(f"invalid {what} {text!r} (expected a number such as 42, 0x2a "
                             "or 052)")
    digits = m.group(1)
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    if value > U64:
        raise PageTypesError(f"{what} {text!r} does not fit in 64 bits")
    return value


def parse_flag_name(token: str, spec: str) -> int:
    """The bits one name, name prefix or number stands for (0 for an empty token)."""
    if not token:
        return 0
    if len(token) <= 8 and "compound".startswith(token):
        return COMPOUND_BITS
    for n in NAMED:
        if n.name.startswith(token):
            return 1 << n.bit
    if _NUMBER.match(token):
        return parse_number(token)
    raise PageTypesError(
        f"unknown flag name {token!r} in {spec!r} (expected a flag name or the start of one, "
        "such as anonymous, thp or anon_exclusive, or a number such as 0x1000; -h lists "
        "the names)")


def parse_flag_names(text: str, *, negated: bool = False, spec: str | None = None) -> int:
    """The bits of a comma-separated list, up to the first ``=``.

    Names written ``~name`` count only when *negated* is true (the mask of a ``~`` spec)."""
    spec = text if spec is None else spec
    flags = 0
    for token in text.split("=", 1)[0].split(","):
        if token.startswith("~"):
            if negated and token[1:]:
                flags |= parse_flag_name(token[1:], spec)
            continue
        flags |= parse_flag_name(token, spec)
    return flags


def parse_bits_spec(spec: str) -> tuple[int, int]:
    """``(mask, bits)`` of a ``-b`` spec; a page passes when ``flags & mask == bits``, or,
    when ``bits`` is :data:`ALL_BITS`, when ``flags & mask`` is not 0.

    The four forms: ``a,b`` (any of them), ``a,b=a`` (of a and b exactly a), ``a,~b`` (a
    set, b clear), ``=a,b`` (exactly a and b, nothing else)."""
    eq = spec.find("=")
    if eq == 0:
        return ALL_BITS, parse_flag_names(spec[1:], spec=spec)
    if eq > 0:
        return parse_flag_names(spec, spec=spec), parse_flag_names(spec[eq + 1:], spec=spec)
    if "~" in spec:
        return parse_flag_names(spec, negated=True), parse_flag_names(spec)
    return parse_flag_names(spec), ALL_BITS


def bits_ok(word: int, filters: list[tuple[int, int]]) -> bool:
    """Whether *word* passes every ``(mask, bits)`` filter."""
    for mask, bits in filters:
        if bits == ALL_BITS:
            if word & mask == 0:
                return False
        elif word & mask != bits:
            return False
    return True


_ADDR_HELP = ("expected N (one page), N+M (M pages from N), N,M (pages N to M-1), N, (from N "
              "to the end) or ,M (pages 0 to M-1), in pages, e.g. 0x1000+16")


def parse_addr_spec(spec: str) -> tuple[int, int]:
    """``(first page, number of pages)`` of a ``-a`` spec (the number is capped so that the
    range ends at 2**64 - 1 at the latest)."""
    sep = spec.find(",")
    if sep < 0:
        sep = spec.find("+")

    def num(text: str) -> int:
        try:
            return parse_number(text, "page number")
        except PageTypesError:
            raise PageTypesError(f"invalid address spec {spec!r}: {text!r} is not a page "
                                 f"number ({_ADDR_HELP})") from None

    if sep == 0:
        offset, size = 0, num(spec[1:])
    elif sep > 0:
        offset = num(spec[:sep])
        if sep == len(spec) - 1:
            size = U64
        else:
            size = num(spec[sep + 1:])
            if spec[sep] == ",":
                if size < offset:
                    raise PageTypesError(f"invalid address spec {spec!r}: the range ends "
                                         f"before it starts ({size} < {offset})")
                size -= offset
    else:
        offset, size = num(spec), 1
    return offset, min(size, U64 - offset)


def flag_kind(bit: int) -> str:
    """page-types' marker in the bit-name list: ``(r)`` raw-only, ``(o)`` overloaded."""
    mask = 1 << bit
    if mask & HACKER_BITS:
        return "(r)"
    if mask & OVERLOADED_BITS:
        return "(o)"
    return "   "


def bit_name_table() -> str:
    """The bit-name list of the usage text: four names a line, marked (r)/(o)."""
    out: list[str] = []
    for i, n in enumerate(NAMED, 1):
        out.append(f"{n.name:>16}{flag_kind(n.bit)}")
        if i % 4 == 0:
            out.append("\n")
    out.append("\n                                   (r) raw mode bits  (o) overloaded bits\n")
    return "".join(out)
