"""anonex.testing: the hypothesis state machine over the explorer's actions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from anonex.explore import cex
from anonex.testing import MMStateMachine, PropertyFailure, machine
from anonex.versions import KernelVersion

FAST = settings(max_examples=25, stateful_step_count=8, deadline=None, database=None,
                derandomize=True, suppress_health_check=list(HealthCheck))

# How a user's test suite uses it: a kernel whose always properties hold in this bound.
TestModernKernel = machine("6.18", kinds=("anon",)).TestCase
TestModernKernel.settings = FAST


class KnownOnHugetlb(MMStateMachine):
    """The hugetlb vmsplice leak is known kernel behaviour: ``known`` lets it pass."""

    kernel = "6.18"
    known = True
    bounds = machine("6.18", kinds=("hugetlb",)).bounds


TestKnownOnHugetlb = KnownOnHugetlb.TestCase
TestKnownOnHugetlb.settings = settings(FAST, max_examples=10)


def test_finds_and_shrinks_the_cve_leak_at_5_7() -> None:
    m = machine("5.7", check=("no-leak",), kinds=("anon",),
                ops=("write", "fork", "vmsplice", "munmap", "exit"))
    with pytest.raises(PropertyFailure) as info:
        run_state_machine_as_test(m, settings=settings(FAST, max_examples=3000,
                                                       stateful_step_count=10))
    failure = info.value
    assert failure.prop == "no-leak"
    text = failure.scenario
    assert text.count("\nP") <= 9  # setup, five steps, the read (shrunk, minimised)
    t = cex.replay(text, KernelVersion.parse("5.7"))
    assert t.verdict == "fail" and "no-leak" in cex.trace_properties(t)
    assert "anonex run FILE --kernel 5.7" in str(failure)
