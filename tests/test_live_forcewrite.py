"""Forced /proc/PID/mem writes as the target's tracer (anonex.live.forcewrite)."""

from __future__ import annotations

import pytest

from anonex.live import forcewrite
from anonex.live.backend import LiveBackend
from anonex.runner import Trace, run
from anonex.scenario.parser import parse, parse_file
from tests.conftest import LIBRARY

P19 = LIBRARY / "predictions" / "p19-force-write-readonly.cow"


def _summary(t: Trace) -> list[tuple[object, ...]]:
    """What a run observed, without physical page numbers."""
    out: list[tuple[object, ...]] = []
    for s in t.steps:
        out.append((s.step.text(), s.result.value, s.result.faults, s.result.error))
        for k, o in sorted(s.obs.items()):
            out.append((k, o.state, o.page, o.anon_exclusive, o.mapcount, o.data))
    return out


def test_mode_here(live: None) -> None:
    assert forcewrite.mode() in (forcewrite.ALWAYS, forcewrite.PTRACE)
    assert (forcewrite.note() == "") == (forcewrite.mode() == forcewrite.ALWAYS)


def test_tracer_writes_like_the_writer(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write as a tracer (Debian 7.2's way) observes exactly what the plain write
    observes on this kernel: same pages, faults, data; the target never stopped."""
    plain = run(parse_file(str(P19)), LiveBackend())
    monkeypatch.setattr(forcewrite, "mode", lambda: forcewrite.PTRACE)
    traced = run(parse_file(str(P19)), LiveBackend())
    assert plain.verdict == traced.verdict == "pass", (plain.reason, traced.reason)
    assert _summary(plain) == _summary(traced)
    assert any("PTRACE_SEIZE" in n for n in traced.env["notes"])


def test_tracer_write_counts_faults(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forcewrite, "mode", lambda: forcewrite.PTRACE)
    text = """title "t"
P0: mmap A anon 1
P0: write A "x"
P0: mprotect A ro
P0: fork P1
P0: force-write P1 A[0] "f" @a
P0: force-write P1 A[0] "g" @b
P1: read A[0] -> v
"""
    t = run(parse(text, "t.cow"), LiveBackend())
    assert [s.result.faults for s in t.steps[4:6]] == [1, 0]  # a COW, then in place
    assert t.vars["v"] == "g"
