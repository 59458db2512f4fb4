"""O_DIRECT against a raw block device of the run's own (anonex.live.dio)."""

from __future__ import annotations

import os

import pytest

from anonex.live import dio
from anonex.live.backend import LiveBackend
from anonex.runner import Trace, run
from anonex.scenario.parser import parse_file
from tests.conftest import LIBRARY

P08 = LIBRARY / "predictions" / "p08-dio-write-shared-unshares.cow"


def _run() -> Trace:
    return run(parse_file(str(P08)), LiveBackend())


def _attached_loops() -> set[str]:
    out = set()
    for name in os.listdir("/sys/block"):
        if name.startswith("loop") and os.path.exists(f"/sys/block/{name}/loop/backing_file"):
            out.add(name)
    return out


def _zram_in_use() -> set[str]:
    return {n for n in os.listdir("/sys/block") if n.startswith("zram")
            and open(f"/sys/block/{n}/initstate").read().strip() == "1"}


def test_dio_on_zram_pins_and_is_undone(live: None) -> None:
    before = (_zram_in_use(), sorted(os.listdir("/sys/block")))
    t = _run()
    assert t.verdict == "pass", t.reason
    assert t.env["dio"]["kind"] in ("zram", "loop")
    if t.env["dio"]["kind"] == "zram":
        assert not any("O_DIRECT" in n for n in t.env["notes"])
    assert (_zram_in_use(), sorted(os.listdir("/sys/block"))) == before


def test_dio_falls_back_to_a_loop_device(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_zram(st: object) -> str:
        raise dio.DioUnavailable("zram: refused by the test")

    monkeypatch.setattr(dio, "_zram", no_zram)
    before = _attached_loops()
    t = _run()
    if t.verdict == "skip":
        pytest.skip(t.reason or "")
    assert t.verdict == "pass", t.reason
    assert t.env["dio"]["kind"] == "loop"
    assert any("loop device" in n for n in t.env["notes"])
    assert _attached_loops() == before  # detached again


def test_no_target_skips_with_every_reason(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> str:
        raise dio.DioUnavailable(f"refused {len(args)}")

    monkeypatch.setattr(dio, "_zram", refuse)
    monkeypatch.setattr(dio, "_loop", refuse)
    monkeypatch.setattr(dio, "_directory", refuse)
    t = _run()
    assert t.verdict == "skip"
    assert "refused 1" in (t.reason or "") and "refused 2" in (t.reason or "")


def test_dio_target_notes() -> None:
    assert dio.DioTarget("/dev/zram3", "zram").note == ""
    assert "loop" in dio.DioTarget("/dev/loop0", "loop").note
    assert "pins only if" in dio.DioTarget("/x", "directory").note
