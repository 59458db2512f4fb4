"""``anonex page-types``: the command line, with page-types' own option syntax.

Options are parsed the way ``getopt_long`` parses them for page-types: clustered short
options (``-rl``), attached or separate arguments (``-banon``, ``-b anon``), long options
with ``=`` or a separate argument and any unambiguous prefix (``--list-e``). Unlike
page-types, ``--kpageflags FILE`` takes its file (page-types' long form silently reads the
live file), a stray argument is an error, and ``-d``/``-h`` act after all options are
parsed. ``-X``/``-x`` (hwpoison) are not supported.

:func:`main` returns the exit status: 0, 1 when page-types would fail too (a word with a
bit it has no name for), 2 for a usage, input or environment error (one line on stderr,
no traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from anonex.pagetypes import names as nm
from anonex.pagetypes.errors import PageTypesError
from anonex.pagetypes.report import describe_json, describe_text, run
from anonex.pagetypes.walk import Options

PROG = "anonex page-types"

#: long option -> (key, takes an argument); keys of page-types' options are its letters
LONG: dict[str, tuple[str, bool]] = {
    "raw": ("r", False), "pid": ("p", True), "file": ("f", True), "addr": ("a", True),
    "bits": ("b", True), "cgroup": ("c", True), "describe": ("d", True),
    "mark-idle": ("i", False), "list": ("l", False), "list-each": ("L", False),
    "list-cgroup": ("C", False), "list-mapcnt": ("M", False), "no-summary": ("N", False),
    "hwpoison": ("X", False), "unpoison": ("x", False), "kpageflags": ("F", True),
    "help": ("h", False),
    # anonex's own
    "json": ("json", False), "exclusive": ("exclusive", False),
    "kpagecount": ("kpagecount", True), "kpagecgroup": ("kpagecgroup", True),
    "pagemap": ("pagemap", True), "maps": ("maps", True), "jobs": ("jobs", True),
}
SHORT_ARG = set("pfabdcF")
SHORT_FLAG = set("rCilLMNXxh")

USAGE = f"""\
{PROG} [options]
            -r|--raw                   Raw mode, for kernel developers
            -d|--describe flags        Describe flags
            -a|--addr    addr-spec     Walk a range of pages
            -b|--bits    bits-spec     Walk pages with specified bits
            -c|--cgroup  path|@inode   Walk pages within memory cgroup
            -p|--pid     pid           Walk process address space
            -f|--file    filename      Walk file address space
            -i|--mark-idle             Mark pages idle
            -l|--list                  Show page details in ranges
            -L|--list-each             Show page details one by one
            -C|--list-cgroup           Show cgroup inode for pages
            -M|--list-mapcnt           Show page map count
            -N|--no-summary            Don't show summary info
            -F|--kpageflags filename   kpageflags file to parse
            -h|--help                  Show this usage message
anonex additions:
               --json                  Write one JSON document instead of the text
               --exclusive             Add anonymous pages by PG_anon_exclusive state
                                       (exclusive, not exclusive, unknown), per VMA with -p
               --kpagecount filename   kpagecount file for -M (saved copy)
               --kpagecgroup filename  kpagecgroup file for -c and -C (saved copy)
               --pagemap filename      pagemap of the -p process (saved copy)
               --maps filename         maps of the -p process (saved copy)
               --jobs N                threads reading kpageflags (default: CPUs, up to 8)
not supported: -X|--hwpoison, -x|--unpoison (poisoning pages)
flags:
            0x10                       bitfield format, e.g.
            anon                       bit-name, e.g.
            0x10,anon                  comma-separated list, e.g.
addr-spec:
            N                          one page at offset N (unit: pages)
            N+M                        pages range from N to N+M-1
            N,M                        pages range from N to M-1
            N,                         pages range from N to end
            ,M                         pages range from 0 to M-1
bits-spec:
            bit1,bit2                  (flags & (bit1|bit2)) != 0
            bit1,bit2=bit1             (flags & (bit1|bit2)) == bit1
            bit1,~bit2                 (flags & (bit1|bit2)) == bit1
            =bit1,bit2                 flags == (bit1|bit2)
bit-names:
"""


def usage() -> str:
    return USAGE + nm.bit_name_table()


def _long(name: str) -> str:
    if name in LONG:
        return name
    hits = [k for k in LONG if k.startswith(name)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise PageTypesError(f"unknown option --{name} (see -h)")
    raise PageTypesError(f"option --{name} is ambiguous (could be "
                         + ", ".join(f"--{h}" for h in hits) + ")")


def getopt(argv: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """``(key, argument)`` for each option of *argv*, in order."""
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            if i < len(argv):
                raise PageTypesError(f"unexpected argument {argv[i]!r} (see -h)")
            return
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            full = _long(name)
            key, needs = LONG[full]
            if needs and not eq:
                if i >= len(argv):
                    raise PageTypesError(f"option --{full} requires an argument")
                value = argv[i]
                i += 1
            elif not needs and eq:
                raise PageTypesError(f"option --{full} doesn't allow an argument")
            yield key, (value if needs else None)
        elif a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                if c in SHORT_ARG:
                    value = a[j + 1:]
                    if not value:
                        if i >= len(argv):
                            raise PageTypesError(f"option -{c} requires an argument")
                        value = argv[i]
                        i += 1
                    yield c, value
                    break
                if c in SHORT_FLAG:
                    yield c, None
                    j += 1
                    continue
                raise PageTypesError(f"unknown option -{c} (see -h)")
        else:
            raise PageTypesError(f"unexpected argument {a!r} (page-types takes options only; "
                                 "see -h)")


def _cgroup(spec: str) -> int:
    if spec.startswith("@"):
        return nm.parse_number(spec[1:], "cgroup inode")
    try:
        st = os.stat(spec)
    except OSError as e:
        raise PageTypesError(f"stat failed: {spec}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PageTypesError(f"cgroup supposed to be a directory: {spec}")
    return st.st_ino


def parse_args(argv: Sequence[str]) -> tuple[Options, list[str], bool]:
    """``(options, -d arguments, -h given)``."""
    o = Options()
    describe: list[str] = []
    want_help = False
    for key, val in getopt(argv):
        v = val or ""
        if key == "r":
            o.raw = True
        elif key == "p":
            o.pid = nm.parse_number(v, "pid")
            if o.pid == 0:
                raise PageTypesError("invalid pid 0")
        elif key == "f":
            o.file = v
        elif key == "a":
            o.ranges.append(nm.parse_addr_spec(v))
        elif key == "b":
            o.filters.append(nm.parse_bits_spec(v))
        elif key == "c":
            o.cgroup = _cgroup(v)
        elif key == "C":
            o.list_cgroup = True
        elif key == "d":
            describe.append(v)
        elif key == "i":
            o.mark_idle = True
        elif key == "l":
            o.list_mode = 1
        elif key == "L":
            o.list_mode = 2
        elif key == "M":
            o.list_mapcnt = True
        elif key == "N":
            o.no_summary = True
        elif key in ("X", "x"):
            raise PageTypesError(f"-{key} ({'hw' if key == 'X' else 'un'}poison) is not "
                                 "supported by anonex page-types; use the kernel's "
                                 "tools/mm/page-types for poisoning pages")
        elif key == "F":
            o.kpageflags = v
        elif key == "h":
            want_help = True
        elif key == "json":
            o.json = True
        elif key == "exclusive":
            o.exclusive = True
        elif key == "kpagecount":
            o.kpagecount = v
        elif key == "kpagecgroup":
            o.kpagecgroup = v
        elif key == "pagemap":
            o.pagemap = v
        elif key == "maps":
            o.maps = v
        elif key == "jobs":
            o.jobs = nm.parse_number(v, "number of jobs")
            if not 1 <= o.jobs <= 256:
                raise PageTypesError(f"--jobs {v}: expected 1 to 256 threads")
    if (o.pagemap or o.maps) and not o.pid:
        raise PageTypesError("--pagemap and --maps describe the process of -p PID; give -p "
                             "too")
    return o, describe, want_help


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run ``anonex page-types`` with *argv* (without the program name); the exit status."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        o, describe, want_help = parse_args(args)
        if want_help:
            out.write(usage())
            return 0
        if describe:
            flags = nm.parse_flag_names(describe[0])
            if o.json:
                out.write(json.dumps(describe_json(flags), indent=1) + "\n")
            else:
                out.write(describe_text(flags))
            return 0
        return run(o, out)
    except PageTypesError as e:
        with contextlib.suppress(BrokenPipeError, ValueError):
            out.flush()
        err.write(f"{PROG}: error: {e.message}\n")
        return e.exit_code
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
