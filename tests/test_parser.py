"""The scenario language: the examples parse, and bad input gets a clear, located error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonex.scenario import ast
from anonex.scenario.errors import ScenarioError
from anonex.scenario.parser import parse, parse_file

from .conftest import LIBRARY


def test_spec_examples_parse(spec_dir: Path) -> None:
    files = sorted(spec_dir.glob("*.cow"))
    assert len(files) >= 10
    for f in files:
        s = parse_file(f)
        assert s.title
        assert s.steps


def test_round_trip_of_step_text(spec_dir: Path) -> None:
    """Every statement written back parses to the same statement."""
    for f in sorted(spec_dir.glob("*.cow")):
        s = parse_file(f)
        text = "\n".join(st.text() for st in s.stmts) + "\n"
        again = parse(text, "again.cow")
        assert [x.text() for x in again.stmts] == [x.text() for x in s.stmts]


def test_every_op_parses() -> None:
    text = """
title "all ops"
P0: mmap A anon 4
P0: mmap T thp
P0: mmap H hugetlb
P0: write A[0..1] "x" @a
P0: read A[0] -> v
P0: touch A[2]
P0: fork P1
P1: munmap A[3]
P0: mprotect A ro
P0: mprotect A rw
P0: mremap A[2..3] -> B
P0: madvise A[0] populate-write
P0: vmsplice A[0] -> pipe
P0: read pipe -> pv
P0: pin A[1] -> h ro fast longterm
P0: dma-write h "d"
P0: dma-read h -> dv
P0: unpin h
P0: dio-read A[0] "z"
P0: dio-write A[0] -> zv
P0: peek P1 A[0] -> pk
P0: poke P1 A[0] "pk"
P0: force-write P1 A[0] "fw"
P0: split T
P0: migrate A[0]
ksm-scan @k
expect not P0 A[0] exclusive on 5.9..5.18
expect @a faults == 1
expect @a copied on >6.0
expect mapcount P0 A[0] == 1 on <6.15
xfail 5.8
"""
    s = parse(text, "all.cow")
    ops = {x.op for x in s.steps}
    assert {"mmap", "write", "read", "read_handle", "touch", "fork", "munmap", "mprotect",
            "mremap", "madvise", "vmsplice", "pin", "unpin", "dma_write", "dma_read",
            "dio_read", "dio_write", "peek", "poke", "force_write", "split", "migrate",
            "ksm_scan"} == ops
    pin = next(x for x in s.steps if x.op == "pin")
    assert pin.pinopts == frozenset({"ro", "fast", "longterm"})
    assert s.xfails[0].on.op == "=="


BAD = [
    ('P0: mmap A anon 1\nP0: wrte A "x"\n', 2, 5, "expected one of"),
    ('P0: mmap A anon 1\nP1: write A "x"\n', 2, 1, "process P1 does not exist"),
    ('P0: mmap A anon 1\nP0: write A[3] "x"\n', 2, 1, "past the end of region A"),
    ("P0: mmap A anon\n", 1, 16, "expected a number"),
    ('expect v == "x"\n', 1, 1, "variable 'v' is not set"),
    ('P0: mmap A anon 1\nP0: write A "x\n', 2, 13, "unterminated tag"),
    ("P0: mmap A anon 1\nP0: madvise A foo\n", 2, 15, "madvise advice"),
    ('xfail 5.x "a"\n', 1, 7, "kernel version"),
    ("P0: mmap A anon 1\nP0: fork P0\n", 2, 1, "already exists"),
    ("P0: mmap A anon 1\nP0: unpin h\n", 2, 1, "not a pin handle"),
    ("P0: mmap A anon 2\nexpect P0 A same P0 A[1]\n", 2, 1, "names one page"),
    ("P0: mmap A anon 1\nexpect @w copied\n", 2, 1, "label @w is not defined"),
    ("P0: mmap A anon 1\nP0: touch A @t\nP0: touch A @t\n", 3, 1, "already used"),
    ("P0: mmap A anon 0\n", 1, 1, "at least 1 page"),
    ("P0: mmap A anon 1\nP0: write A[1..0] \"x\"\n", 2, 1, "empty page range"),
]


@pytest.mark.parametrize(("text", "line", "col", "what"), BAD)
def test_errors_are_located(text: str, line: int, col: int, what: str) -> None:
    with pytest.raises(ScenarioError) as ei:
        parse(text, "bad.cow")
    e = ei.value
    assert (e.line, e.column) == (line, col), e.render()
    assert what in e.message
    rendered = e.render()
    assert rendered.startswith(f"bad.cow:{line}:{col}: error: ")
    assert "Traceback" not in rendered


def test_non_utf8_file(tmp_path: Path) -> None:
    f = tmp_path / "bin.cow"
    f.write_bytes(b'title "x"\nP0: mmap A anon 1\n\xff\xfe\n')
    with pytest.raises(ScenarioError) as ei:
        parse_file(f)
    assert ei.value.line == 3
    assert "UTF-8" in ei.value.message


_TOKENS = ["P0", "P1", ":", "mmap", "A", "B", "anon", "1", "2", "thp", "write", "read", "->",
           "v", '"x"', '"', "[", "]", "..", "0", "fork", "expect", "not", "same", "==",
           "mapcount", "@w", "faults", "on", ">=", "5.19", "xfail", "pin", "h", "ro",
           "vmsplice", "pipe", "munmap", "madvise", "dontfork", "exclusive", "\n", "#c\n",
           "ksm-scan", "title", "é", "\t", "copied", "6.", "-", "unpin", "exit"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=30).map(" ".join))
def test_malformed_never_tracebacks(text: str) -> None:
    """Whatever the text, parsing either succeeds or raises a located ScenarioError."""
    try:
        s = parse(text, "fuzz.cow")
    except ScenarioError as e:
        assert e.file == "fuzz.cow"
        assert e.line >= 1 and e.column >= 1
        assert re.match(r"fuzz\.cow:\d+:\d+: error: \S", e.render())
        return
    assert isinstance(s, ast.Scenario)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_tracebacks(text: str) -> None:
    try:
        parse(text, "any.cow")
    except ScenarioError as e:
        assert e.line >= 1 and e.column >= 1


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_library_files(data: st.DataObject) -> None:
    """Delete, duplicate or corrupt one character of a valid file: still no traceback."""
    files = sorted(LIBRARY.rglob("*.cow"))
    text = data.draw(st.sampled_from(files)).read_text()
    i = data.draw(st.integers(0, len(text) - 1))
    how = data.draw(st.sampled_from(["del", "dup", "sub"]))
    ch = data.draw(st.sampled_from(list('[]"@:->=.#\n xyzP9')))
    mutated = {"del": text[:i] + text[i + 1:], "dup": text[:i] + text[i] + text[i:],
               "sub": text[:i] + ch + text[i + 1:]}[how]
    try:
        parse(mutated, "m.cow")
    except ScenarioError as e:
        assert 1 <= e.line <= mutated.count("\n") + 2


def test_scenario_errors_cross_process_boundaries() -> None:
    """A worker that fails to parse hands the error back whole (pickled)."""
    import pickle

    from anonex.scenario.errors import ScenarioError

    e = ScenarioError("f.cow", 3, 7, "expected a region", "P0: write 5")
    back = pickle.loads(pickle.dumps(e))
    assert isinstance(back, ScenarioError) and back.render() == e.render()
