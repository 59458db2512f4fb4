"""Fault injection: a live run that changed the machine puts everything back on every way out.

Each test starts a run that needs swap (switched on when none is active), KSM (ksmd run and
tuning), a hugetlb reservation and the 64 KiB mTHP setting; then the run breaks: an
exception inside a step, an actor killed with SIGKILL, the driver killed by a signal.
Afterwards swap, the hugetlb pool, KSM and THP/mTHP settings must be exactly as before, no
actor may be left and no private directory.

Tests that need the live kernel skip with the reason when :func:`anonex.live.available`
says no, and fail instead when ``ANONEX_REQUIRE_LIVE=1``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from anonex.live import machine
from anonex.live.backend import LiveBackend
from anonex.runner import run
from anonex.scenario.ast import Step
from anonex.scenario.parser import parse

SETUP = """
P0: mmap K anon 2
P0: write K "same"
P0: madvise K mergeable
ksm-scan
P0: mmap S anon 1
P0: write S "s"
P0: madvise S pageout
P0: mmap H hugetlb
P0: write H "h"
P0: mmap M anon 16
P0: madvise M hugepage
P0: write M "m"
P0: fork P1
"""
BREAK = 'P1: write M[3] "c"\nP0: read S[0] -> v\n'


def system() -> dict[str, Any]:
    """Every system-wide thing a live run may change, as it is now."""
    thp = {d: machine.selected(machine.read(f"{machine.THP}/{d}/enabled"))
           for d in sorted(os.listdir(machine.THP))
           if os.path.exists(f"{machine.THP}/{d}/enabled")}
    thp["top"] = machine.selected(machine.read(f"{machine.THP}/enabled"))
    thp["khugepaged"] = machine.read(f"{machine.THP}/khugepaged/scan_sleep_millisecs")
    zram = {n: (machine.read(f"/sys/block/{n}/initstate"), machine.read(f"/sys/block/{n}/disksize"))
            for n in sorted(os.listdir("/sys/block")) if n.startswith("zram")}
    return {
        "swaps": machine.active_swaps(),
        "zram": zram,
        "nr_hugepages": machine.read(f"{machine.HUGETLB_2M}/nr_hugepages"),
        "ksm": {n: machine.read(f"{machine.KSM}/{n}")
                for n in ("run", "pages_to_scan", "sleep_millisecs", "smart_scan")},
        "thp": thp,
    }


def _changed_during_run(before: dict[str, Any]) -> None:
    """The run really changed what it had to (else the tests would prove nothing)."""
    now = system()
    if not before["swaps"]:
        assert now["swaps"], "no swap was switched on"
    assert now["thp"]["hugepages-64kB"] == "madvise"
    assert int(now["nr_hugepages"] or 0) >= int(before["nr_hugepages"] or 0)
    assert int(now["ksm"]["pages_to_scan"] or 0) >= machine.KSM_PAGES_TO_SCAN


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _assert_clean(before: dict[str, Any], pids: list[int], dirs: list[str]) -> None:
    assert system() == before
    assert not os.path.exists(machine.JOURNAL)
    assert pids and all(_gone(p) for p in pids), pids
    assert dirs and not any(os.path.exists(d) for d in dirs), dirs


def test_exception_inside_a_step_restores_everything(live: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = system()
    seen: dict[str, Any] = {}
    real_call = LiveBackend._call

    def call(self: LiveBackend, proc: Any, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("op") == "write" and msg.get("tag") == "c":  # inside P1's write step
            seen["pids"] = list(self.pids.values())
            seen["dirs"] = self.directories
            _changed_during_run(before)
            raise RuntimeError("injected fault")
        return real_call(self, proc, msg)

    monkeypatch.setattr(LiveBackend, "_call", call)
    with pytest.raises(RuntimeError, match="injected fault"):
        run(parse('title "t"\n' + SETUP + BREAK, "t.cow"), LiveBackend())
    assert len(seen["pids"]) == 2
    _assert_clean(before, seen["pids"], seen["dirs"])


def test_actor_killed_mid_run_restores_everything(live: None) -> None:
    before = system()
    be = LiveBackend()
    scen = parse('title "t"\n' + SETUP + BREAK, "t.cow")
    try:
        be.start(scen)
        steps: list[Step] = scen.steps
        for st in steps[:-2]:
            r = be.step(st)
            assert r.error is None and r.skipped is None, (st.text(), r)
        _changed_during_run(before)
        pids, dirs = list(be.pids.values()), be.directories
        os.kill(be.pids["P1"], signal.SIGKILL)
        r = be.step(steps[-2])  # P1's write: the actor is gone
        assert r.error is not None and "P1" in r.error
        os.kill(be.pids["P0"], signal.SIGKILL)  # the one that holds swap, hugetlb, KSM pages
        r = be.step(steps[-1])
        assert r.error is not None and "P0" in r.error
    finally:
        be.finish()
    _assert_clean(before, pids, dirs)
    be.finish()  # idempotent
    assert system() == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_driver_killed_by_signal_restores_everything(live: None, sig: int) -> None:
    before = system()
    code = f"""
import json, time
from anonex.live.backend import LiveBackend
from anonex.scenario.parser import parse
be = LiveBackend()
scen = parse({('title "t"' + SETUP)!r}, "t.cow")
be.start(scen)
for st in scen.steps:
    r = be.step(st)
    assert r.error is None and r.skipped is None, (st.text(), r)
print(json.dumps([list(be.pids.values()), be.directories]), flush=True)
time.sleep(60)
"""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo / "src"))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the driver died before the run was set up"
        pids, dirs = json.loads(line)
        _changed_during_run(before)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5  # orphans of the dead driver are reaped by init
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    _assert_clean(before, pids, dirs)


# -- one live run at a time ------------------------------------------------------------------


def test_a_second_run_waits_for_the_first(live: None) -> None:
    first = machine.RunLock()
    try:
        with pytest.raises(TimeoutError, match="another anonex live run"):
            machine.RunLock(timeout=0.2)
    finally:
        first.release()
    machine.RunLock(timeout=0.2).release()


def test_actors_do_not_keep_the_run_lock(live: None) -> None:
    be = LiveBackend()
    try:
        be.start(parse('title "t"\nP0: mmap A anon 1\nP0: fork P1', "t.cow"))
        for st in parse('title "t"\nP0: mmap A anon 1\nP0: fork P1', "t.cow").steps:
            assert be.step(st).error is None
        assert be._lock is not None
        be._lock.release()  # as if the driver were gone: the actors must not hold it
        machine.RunLock(timeout=0.5).release()
    finally:
        be.finish()


def test_driver_killed_by_sigkill_is_repaired_by_the_next_run(live: None) -> None:
    """No handler runs on SIGKILL: the run's journal lets the next run undo what it left."""
    before = system()
    code = f"""
import json, time
from anonex.live.backend import LiveBackend
from anonex.scenario.parser import parse
be = LiveBackend()
scen = parse({('title "t"' + SETUP)!r}, "t.cow")
be.start(scen)
for st in scen.steps:
    r = be.step(st)
    assert r.error is None and r.skipped is None, (st.text(), r)
print(json.dumps([list(be.pids.values()), be.directories]), flush=True)
time.sleep(60)
"""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo / "src"))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        pids, dirs = json.loads(proc.stdout.readline())
        _changed_during_run(before)
        assert os.path.exists(machine.JOURNAL)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5  # the actors see EOF on their command FIFOs and exit
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(p) for p in pids), pids
    be = LiveBackend()
    try:
        be.start(parse('title "t"\nP0: mmap A anon 1', "t.cow"))  # recovers first
    finally:
        be.finish()
    assert system() == before
    assert not os.path.exists(machine.JOURNAL)
    assert dirs and not any(os.path.exists(d) for d in dirs), dirs
