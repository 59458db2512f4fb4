"""No traceback on any input: mutants of the library's own files go through the parser and
the model, and either parse (then run, each step a result or an error of that step) or get
an error at file:line:column. The long run is ``python tools/fuzz_inputs.py``."""

from __future__ import annotations

import random
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from anonex.harness.model import ModelBackend
from anonex.runner import run
from anonex.scenario.errors import ScenarioError
from anonex.scenario.mutate import mutant
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

from .conftest import LIBRARY

VERSIONS = (KernelVersion(5, 4), KernelVersion(6, 18))


@cache
def _texts() -> tuple[str, ...]:
    # the small scenarios: a few hundred mutants in a few seconds
    return tuple(p.read_text() for p in sorted(LIBRARY.rglob("*.cow"))
                 if "thp" not in p.read_text() and "hugetlb" not in p.read_text())


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2**32))
def test_a_mutant_parses_or_says_where_and_never_crashes(seed: int) -> None:
    texts = _texts()
    rng = random.Random(seed)
    text = mutant(rng.choice(texts), rng, list(texts))
    try:
        scen = parse(text, "mutant.cow")
    except ScenarioError as e:
        msg = e.render()
        assert msg.startswith(f"mutant.cow:{e.line}:{e.column}: error: "), msg
        return
    for v in VERSIONS:
        run(scen, ModelBackend(v))  # any exception fails the test


def test_reading_a_pipe_twice_is_an_error_at_the_second_read() -> None:
    text = ('P0: mmap A anon 1\nP0: write A "x"\nP0: vmsplice A -> pipe\n'
            "P0: read pipe -> a\nP0: read pipe -> b\n")
    try:
        parse(text, "t.cow")
    except ScenarioError as e:
        assert (e.line, e.column) == (5, 1)
        assert "'pipe' was read at line 4" in e.message
    else:
        raise AssertionError("no error")


def test_a_process_that_exited_cannot_act() -> None:
    text = 'P0: mmap A anon 1\nP0: fork P1\nP1: exit\nP0: peek P1 A[0] -> v\n'
    try:
        parse(text, "t.cow")
    except ScenarioError as e:
        assert e.line == 4 and "process P1 exited at line 3" in e.message
    else:
        raise AssertionError("no error")


def test_a_pin_after_unpin_is_an_error_and_a_new_pin_is_not() -> None:
    base = 'P0: mmap A anon 1\nP0: write A "x"\nP0: pin A -> b\nP0: unpin b\n'
    try:
        parse(base + "P0: unpin b\n", "t.cow")
    except ScenarioError as e:
        assert e.line == 5 and "'b' was unpinned at line 4" in e.message
    else:
        raise AssertionError("no error")
    parse(base + "P0: pin A -> b\nP0: dma-read b -> v\nP0: unpin b\n", "t.cow")
