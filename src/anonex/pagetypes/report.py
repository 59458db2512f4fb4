"""Run a walk and write what page-types writes (or one JSON document).

Text output follows page-types byte for byte: the list header and rows, the summary table
(``flags``, ``page-count``, ``MB``, symbolic and long flag names; the rows in page-types'
hash-table order) and the ``total`` line, the file header of ``-f``. ``--exclusive`` adds
one section after it: anonymous pages by PG_anon_exclusive state, per VMA with ``-p``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, TextIO

from anonex import __version__
from anonex.pagetypes import decode as dc
from anonex.pagetypes import names as nm
from anonex.pagetypes import proc
from anonex.pagetypes.errors import PageTypesError
from anonex.pagetypes.walk import (
    NOTE_SLAB,
    NOTE_UNKNOWN,
    Engine,
    Options,
    Tally,
    default_jobs,
    open_idle_bitmap,
    open_sources,
    walk_page_cache,
    walk_pfns,
    walk_task,
)

PAGE_SIZE = dc.PAGE_SIZE
ALL_PAGES = [(0, nm.U64)]


def pages2mb(pages: int) -> int:
    return (pages * PAGE_SIZE) >> 20


def summary_text(rows: list[dc.SummaryRow], total: int) -> str:
    """page-types' summary table."""
    out = ["             flags\tpage-count       MB  symbolic-flags\t\t\t"
           "long-symbolic-flags\n"]
    out.extend(f"0x{r.flags:016x}\t{r.pages:10d} {r.mb:8d}  {r.symbolic}\t{r.long_names}\n"
               for r in rows)
    out.append(f"             total\t{total:10d} {pages2mb(total):8d}\n")
    return "".join(out)


def describe_text(flags: int) -> str:
    """``-d``: the word, its symbolic and its long flag names."""
    return f"0x{flags:016x}\t{nm.symbolic(flags)}\t{nm.long_names(flags)}\n"


def describe_json(flags: int) -> dict[str, Any]:
    return {"flags": f"0x{flags:016x}", "value": flags,
            "symbolic": nm.symbolic(flags) if not nm.unnamed_bits(flags) else None,
            "names": nm.names_of(flags), "unnamed_bits": nm.unnamed_bits(flags)}


def file_header(name: str, st: os.stat_result, now: float | None = None) -> str:
    """``-f``: name, inode, size, and modification/access times."""
    t = int(time.time() if now is None else now)
    mtime = time.strftime("%c", time.localtime(int(st.st_mtime)))
    atime = time.strftime("%c", time.localtime(int(st.st_atime)))
    size = st.st_size
    return (f"{name}\tInode: {st.st_ino & 0xFFFFFFFF}\tSize: {size} "
            f"({(size + PAGE_SIZE - 1) // PAGE_SIZE} pages)\n"
            f"Modify: {mtime} ({t - int(st.st_mtime)} seconds ago)\n"
            f"Access: {atime} ({t - int(st.st_atime)} seconds ago)\n")


_COLS = (("pages", "pages"), ("swapped", "swapped"), ("anon", "anon"),
         ("exclusive", "excl"), ("not_exclusive", "not-excl"), ("unknown", "unknown"),
         ("ksm", "ksm"), ("thp", "thp"), ("hugetlb", "hugetlb"), ("zero", "zero"),
         ("file", "file"), ("mmap_exclusive", "mapped-1"))


def exclusive_text(total: Tally, vmas: list[tuple[proc.Vma, Tally]] | None) -> str:
    """The ``--exclusive`` section."""
    width = 30 if vmas is not None else 12
    head = f"{'vma' if vmas is not None else '':<{width}}" + "".join(
        f" {title:>9}" for _, title in _COLS)
    out = ["\nanonymous pages by PG_anon_exclusive (kpageflags bit 34 on anonymous, "
           "non-KSM pages):\n", head + ("  name\n" if vmas is not None else "\n")]

    def line(label: str, t: Tally, name: str = "") -> str:
        s = f"{label:<{width}}" + "".join(f" {t.n[key]:9d}" for key, _ in _COLS)
        return s + (f"  {name}".rstrip() if vmas is not None else "") + "\n"

    for v, t in vmas or []:
        out.append(line(v.label, t, v.name))
    out.append(line("total", total))
    if total.n["unknown"]:
        out.append(f"note: {NOTE_UNKNOWN}\n")
    if total.n["slab_anon"]:
        out.append(f"note: {NOTE_SLAB.format(n=total.n['slab_anon'])}\n")
    return "".join(out)


def _tally_json(t: Tally) -> dict[str, Any]:
    d: dict[str, Any] = t.json()
    notes = []
    if t.n["unknown"]:
        notes.append(NOTE_UNKNOWN)
    if t.n["slab_anon"]:
        notes.append(NOTE_SLAB.format(n=t.n["slab_anon"]))
    d["notes"] = notes
    return d


def run(o: Options, out: TextIO) -> int:
    """Walk as *o* says and write the result to *out*; the exit status."""
    vmas: list[proc.Vma] | None = None
    pm: proc.Pagemap | None = None
    if o.pid:
        vmas = proc.read_maps(o.pid, o.maps)
        pm = proc.Pagemap(o.pid, o.pagemap)
    try:
        return _run(o, out, vmas, pm)
    finally:
        if pm is not None:
            pm.close()


def _run(o: Options, out: TextIO, vmas: list[proc.Vma] | None,
         pm: proc.Pagemap | None) -> int:
    idle_fd = open_idle_bitmap() if o.mark_idle else -1
    try:
        src = open_sources(o)
    except PageTypesError:
        if idle_fd >= 0:
            os.close(idle_fd)
        raise
    eng = Engine(o, out)
    eng.idle_fd = idle_fd
    if src.flags.is_proc:
        eng.head_mirrored = dc.head_mirrored_for(os.uname().release)
    st: os.stat_result | None = None
    try:
        if eng.lister is not None and not o.json:
            out.write(eng.lister.header(o))
        if o.file is not None:
            st = walk_page_cache(eng, src, o.file, o.ranges)
        elif o.pid and pm is not None and vmas is not None:
            walk_task(eng, src, pm, vmas, o.ranges or ALL_PAGES)
        else:
            walk_pfns(eng, src, o.ranges or ALL_PAGES, o.jobs or default_jobs())
        eng.flush_list()
    finally:
        src.close()
        if idle_fd >= 0:
            os.close(idle_fd)
    rows = eng.summary()
    vma_rows = ([(vmas[i], eng.vma_tally.get(i, Tally())) for i in range(len(vmas))
                 if i in eng.vma_tally] if vmas is not None else None)
    if o.json:
        doc: dict[str, Any] = {
            "tool": "anonex page-types", "version": __version__, "raw": o.raw,
            "kpageflags": o.kpageflags, "live": src.flags.is_proc,
        }
        if o.pid:
            doc["pid"] = o.pid
        if eng.list_rows is not None:
            doc["list"] = eng.list_rows
        if o.file is not None and st is not None:
            doc["file"] = {"name": o.file, "inode": st.st_ino, "size": st.st_size,
                           "pages": (st.st_size + PAGE_SIZE - 1) // PAGE_SIZE,
                           "mtime": int(st.st_mtime), "atime": int(st.st_atime)}
        if not o.no_summary:
            doc["summary"] = [r.json() for r in rows]
            doc["total"] = {"pages": eng.counts.total, "mb": pages2mb(eng.counts.total)}
        doc["anon"] = _tally_json(eng.tally)
        doc["anon"]["head_mirrored"] = eng.head_mirrored
        if vma_rows is not None:
            doc["vmas"] = [{"start": f"0x{v.start:x}", "end": f"0x{v.end:x}", "perms": v.perms,
                            "offset": v.offset, "dev": v.dev, "inode": v.inode, "name": v.name,
                            **t.json()} for v, t in vma_rows]
        out.write(json.dumps(doc, indent=1) + "\n")
        return 0
    if not o.no_summary:
        text = []
        if o.list_mode:
            text.append("\n\n")
        if o.file is not None and st is not None:
            text.append(file_header(o.file, st) + "\n")
        text.append(summary_text(rows, eng.counts.total))
        out.write("".join(text))
    if o.exclusive:
        out.write(exclusive_text(eng.tally, vma_rows))
    return 0
