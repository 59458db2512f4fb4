"""The state codec: round trip, hashability, canonical form."""

from __future__ import annotations

from anonex.kernel.backend import ModelBackend
from anonex.kernel.codec import decode, encode
from anonex.observation import Unsupported
from anonex.scenario.parser import parse_file

from .conftest import LIBRARY


def _states(path_glob: str = "*.cow") -> list[tuple[object, ModelBackend]]:
    out = []
    for f in sorted(LIBRARY.glob(path_glob)):
        scen = parse_file(f)
        be = ModelBackend()
        be.start(scen)
        for st in scen.steps:
            try:
                be.step(st)
            except Unsupported:
                break
            out.append((encode(be.k), be))
    return out


def test_round_trip_every_library_state() -> None:
    states = _states()
    assert len(states) > 30
    for value, be in states:
        again = decode(value, be.version)  # type: ignore[arg-type]
        assert encode(again) == value
        hash(value)


def test_canonical_under_renumbering() -> None:
    """States that differ only in page and slot numbers encode equally."""
    f = LIBRARY / "basic-cow-after-fork.cow"
    scen = parse_file(f)
    a, b = ModelBackend(), ModelBackend()
    a.start(scen)
    b.start(scen)
    b.k.next_pfn = 5000
    b.k.next_slot = 77
    for st in scen.steps:
        a.step(st)
        b.step(st)
        assert encode(a.k) == encode(b.k)


def test_decoded_state_runs_on() -> None:
    """A decoded state behaves like the original for the rest of a scenario."""
    scen = parse_file(LIBRARY / "vmsplice-unmap-child.cow")
    steps = scen.steps
    a = ModelBackend()
    a.start(scen)
    for st in steps[:4]:
        a.step(st)
    b = ModelBackend()
    b.start(scen)
    b.k = decode(encode(a.k), a.version)
    b.oracle = a.oracle
    b.region_pages = dict(a.region_pages)
    for st in steps[4:]:
        ra, rb = a.step(st), b.step(st)
        assert (ra.value, ra.faults, ra.finding) == (rb.value, rb.faults, rb.finding)
        assert encode(a.k) == encode(b.k)
