"""Helpers for the tests of the model's mechanisms (tests/test_kernel_*.py, one per module of
anonex.kernel, and test_harness.py).

Each test checks a mechanism against the facts of kernel-semantics.md (6.18 unless said).
Most are small scenarios: the runner checks their expectations on the model, and the test
also looks at what only the model can see (refcount, PTE bits) in the trace or the state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anonex.harness.model import ModelBackend
from anonex.runner import Trace
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

ROOT = Path(__file__).resolve().parent.parent


def model_state(text: str, version: str = "6.18") -> ModelBackend:
    """The model backend after running every step of *text*."""
    be = ModelBackend(KernelVersion.parse(version))
    scen = parse(text, "t.cow")
    be.start(scen)
    for st in scen.steps:
        be.step(st)
    return be


def ok(t: Trace) -> None:
    """The run passed, or the reason why not."""
    assert t.verdict == "pass", t.reason


def obs(t: Trace, step: int, proc: str, idx: int = 0, region: str = "A") -> Any:
    """The observation of page *idx* of *region* in *proc* after step *step*."""
    return t.steps[step].obs[(proc, region, idx)]
