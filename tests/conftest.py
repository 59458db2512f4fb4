"""Shared helpers for the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from anonex.harness.model import ModelBackend
from anonex.live import available
from anonex.live.backend import LiveBackend
from anonex.runner import Trace, run
from anonex.scenario.parser import parse
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


@pytest.fixture
def live() -> None:
    """Skip without the live kernel (root, /proc/kpageflags), with the reason; fail instead
    when ANONEX_REQUIRE_LIVE=1 (CI)."""
    ok, why = available()
    if not ok:
        if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
            pytest.fail(f"ANONEX_REQUIRE_LIVE=1 but the live kernel is not available: {why}")
        pytest.skip(f"live kernel not available: {why}")


@pytest.fixture
def backend(live: None) -> Iterator[LiveBackend]:
    """A live backend, finished after the test whatever happens."""
    be = LiveBackend()
    yield be
    be.finish()
