"""A recorded backend replays to the same trace: what a booted kernel's guest sends back is
all the runner on the host needs (anonex.boot.record)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anonex.boot.record import Recorder, Replay, ReplayError
from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.live import LiveUnavailable
from anonex.observation import Unsupported
from anonex.runner import Trace, run
from anonex.scenario.parser import parse, parse_file
from anonex.versions import KernelVersion

from .conftest import LIBRARY

CASES = ["vmsplice-unmap-child.cow", "swap-roundtrip.cow", "thp-write-while-shared.cow",
         "ksm-merge-then-write.cow", "memory/thp-pageout-half.cow"]


def _record_and_replay(path: Path, version: str) -> tuple[Trace, Trace]:
    scen = parse_file(path)
    rec = Recorder(ModelBackend(KernelVersion.parse(version)))
    original = run(scen, rec)
    # the recording goes through JSON, as it does from a guest
    events = json.loads(json.dumps(rec.events))
    replay = Replay("replay", rec.version, lambda s: events)
    return original, run(scen, replay)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("version", ["5.10", "6.18"])
def test_replay_gives_the_same_trace(name: str, version: str) -> None:
    original, replayed = _record_and_replay(LIBRARY / name, version)
    assert replayed.verdict == original.verdict
    assert replayed.reason == original.reason
    assert replayed.vars == original.vars
    assert [s.outcome for s in replayed.steps] == [s.outcome for s in original.steps]
    assert diff(original, replayed) == []
    # page labels are given by the host's runner from the recorded identities
    labels = [{k: o.page for k, o in s.obs.items()} for s in original.steps]
    assert labels == [{k: o.page for k, o in s.obs.items()} for s in replayed.steps]


class _Refusing:
    """A backend whose start or step raises, to record exceptions."""

    name = "refusing"
    version = KernelVersion.parse("6.1")

    def __init__(self, at: str) -> None:
        self.at = at

    def start(self, scenario: object) -> None:
        if self.at == "start":
            raise LiveUnavailable("no kernel here")

    def step(self, step: object) -> object:
        raise Unsupported("cannot do that")

    def observe(self) -> list[object]:
        return []

    def finish(self) -> None:
        pass

    def environment(self) -> dict[str, object]:
        return {"k": 1}


SCEN = parse('P0: mmap A anon 1\nP0: write A "x"\n', "t.cow")


def test_replay_keeps_unsupported_as_a_skip() -> None:
    rec = Recorder(_Refusing("step"))  # type: ignore[arg-type]
    t = run(SCEN, rec)
    assert t.verdict == "skip"
    replayed = run(SCEN, Replay("r", rec.version, lambda s: list(rec.events)))
    assert replayed.verdict == "skip" and replayed.reason == t.reason
    assert replayed.env == {"k": 1}


def test_replay_raises_live_unavailable_where_the_guest_did() -> None:
    rec = Recorder(_Refusing("start"))  # type: ignore[arg-type]
    with pytest.raises(LiveUnavailable):
        run(SCEN, rec)
    with pytest.raises(LiveUnavailable, match="no kernel here"):
        run(SCEN, Replay("r", rec.version, lambda s: list(rec.events)))


def test_replay_refuses_a_different_scenario() -> None:
    scen = parse_file(LIBRARY / "swap-roundtrip.cow")
    rec = Recorder(ModelBackend(KernelVersion.parse("6.18")))
    run(scen, rec)
    other = parse_file(LIBRARY / "vmsplice-unmap-child.cow")
    with pytest.raises(ReplayError):
        run(other, Replay("r", rec.version, lambda s: list(rec.events)))
