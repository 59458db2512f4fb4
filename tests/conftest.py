"""Shared helpers for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonex.kernel.backend import ModelBackend
from anonex.scenario.parser import parse
from anonex.scenario.runner import Trace, run
from anonex.versions import KernelVersion

SPEC = Path(__file__).resolve().parents[2] / "shared" / "scenarios-spec"
LIBRARY = Path(__file__).resolve().parents[1] / "src" / "anonex" / "library"


def model_run(text: str, version: str = "6.18") -> Trace:
    """Parse *text* and run it on the model at *version*."""
    return run(parse(text, "t.cow"), ModelBackend(KernelVersion.parse(version)))


@pytest.fixture
def spec_dir() -> Path:
    if not SPEC.is_dir():
        pytest.skip(f"the shared scenario examples are not at {SPEC}")
    return SPEC
