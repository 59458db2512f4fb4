"""page-types' raw-mode view of one kpageflags word: overloaded flags expanded.

Models ``expand_overloaded_flags()`` of tools/mm/page-types.c for a single page: an anon page
with KPF_OWNER_2 (bit 34, once KPF_MAPPEDTODISK) shows ``anon_exclusive`` instead; on a slab
page ACTIVE is ``slub_frozen`` and ERROR ``slub_debug``; RECLAIM without WRITEBACK is
``readahead``. Returns page-types' long names.
"""

from __future__ import annotations

from anonex.procfs import kpageflags as kpf


def expand_overloaded(word: int) -> int:
    """The word with page-types' overloaded-flag slots (47 and up) filled in."""
    if kpf.has(word, kpf.KPF_ANON) and kpf.has(word, kpf.KPF_OWNER_2):
        word ^= (1 << kpf.KPF_OWNER_2) | (1 << kpf.KPF_ANON_EXCLUSIVE_TOOL)
    if kpf.has(word, kpf.KPF_SLAB):
        if kpf.has(word, kpf.KPF_ACTIVE):
            word ^= (1 << kpf.KPF_ACTIVE) | (1 << kpf.bit("SLUB_FROZEN"))
        if kpf.has(word, kpf.bit("ERROR")):
            word ^= (1 << kpf.bit("ERROR")) | (1 << kpf.bit("SLUB_DEBUG"))
    if kpf.has(word, kpf.bit("RECLAIM")) and not kpf.has(word, kpf.bit("WRITEBACK")):
        word ^= (1 << kpf.bit("RECLAIM")) | (1 << kpf.bit("READAHEAD"))
    return word


def raw_names(word: int) -> list[str]:
    """page-types -r long flag names for the page (``anon_exclusive``, ``owner_2`` …)."""
    out: list[str] = []
    for b in range(64):
        if kpf.has(expand_overloaded(word), b):
            row = kpf.info(b)
            if row is not None and row.tool_name is not None:
                out.append(row.tool_name)
    return out
