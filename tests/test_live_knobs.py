"""Every system setting an outcome depends on is set explicitly and restored
(anonex.live.machine: THP, mTHP, khugepaged, KSM, swap readahead)."""

from __future__ import annotations

from pathlib import Path

from anonex.live import machine
from anonex.live.backend import LiveBackend
from anonex.live.safety import SystemState
from anonex.scenario.parser import parse


def test_set_knob_writes_only_what_differs(tmp_path: Path) -> None:
    menu = tmp_path / "enabled"
    menu.write_text("[always] madvise never\n")
    same = tmp_path / "defrag"
    same.write_text("always defer defer+madvise [madvise] never\n")
    st = SystemState()
    assert machine.set_knob(st, str(menu), "madvise")
    assert machine.set_knob(st, str(same), "madvise")
    assert not machine.set_knob(st, str(tmp_path / "missing"), "1")
    assert menu.read_text() == "madvise" and st.saved == [(str(menu), "always")]
    st.restore()
    assert menu.read_text() == "always"


def _knobs() -> dict[str, str | None]:
    paths = [f"{machine.THP}/{n}" for n in machine.THP_SETTINGS]
    paths += [f"{machine.THP}/hugepages-{s}/enabled" for s in machine.mthp_sizes()]
    paths += [f"{machine.KSM}/{n}" for n in machine.KSM_SETTINGS]
    paths += list(machine.SWAP_SETTINGS)
    return {p: machine.selected(machine.read(p)) for p in paths}


SCEN = """title "t"
P0: mmap A thp
P0: write A "x"
P0: madvise A mergeable
P0: madvise A pageout
ksm-scan
"""


def test_settings_during_the_run_and_after(live: None) -> None:
    before = _knobs()
    be = LiveBackend()
    try:
        be.start(parse(SCEN, "t.cow"))
        during = _knobs()
        env = be.environment()
    finally:
        be.finish()
    assert _knobs() == before
    want = {f"{machine.THP}/{n}": v for n, v in machine.THP_SETTINGS.items()}
    want.update({f"{machine.THP}/hugepages-{s}/enabled": machine.MTHP_SETTINGS.get(s, "never")
                 for s in machine.mthp_sizes()})
    want.update(machine.SWAP_SETTINGS)
    want.update({f"{machine.KSM}/{n}": v for n, v in machine.KSM_SETTINGS.items()})
    refused = " ".join(env["notes"])
    for path, value in want.items():
        if during[path] is None or path.rsplit("/", 1)[-1] in refused:
            continue  # not on this kernel, or refused (said in the notes)
        assert during[path] == value, path
    assert env["thp_enabled"] == "madvise" and env["ksm_run"] == "0"
