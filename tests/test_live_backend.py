"""The live-kernel backend on the running kernel.

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

import anonex.live.backend as live_backend
from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.live import LiveUnavailable, available
from anonex.live.backend import LiveBackend
from anonex.observation import PageObs, StepResult
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm
from anonex.runner import run
from anonex.scenario.ast import Loc, Pos, Scenario, Step
from anonex.scenario.parser import parse, parse_file

from .conftest import LIBRARY

SPEC_LIVE = ["basic-cow-after-fork", "vmsplice-unmap-child", "iouring-fixed-buffer-fork",
             "iouring-fixed-buffer-mprotect", "remote-read-unshares", "swap-roundtrip",
             "pinned-page-not-swapped", "ksm-merge-then-write", "thp-write-while-shared"]
FINDINGS = LIBRARY.parents[2] / "findings"
PREDICTIONS = sorted((LIBRARY / "predictions").glob("*.cow"))
# scenarios that show a model/kernel disagreement: they describe the kernel, the model fails
DISAGREEMENTS = sorted(FINDINGS.glob("*.cow"))
LIBRARY_FILES = sorted(p for p in LIBRARY.rglob("*.cow") if "disagreements" not in p.parts)
PAGE = 4096


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _steps(text: str) -> list[Step]:
    return parse("title \"t\"\n" + text, "t.cow").steps


def _start(be: LiveBackend, text: str) -> list[StepResult]:
    """Start *be* and run the steps of *text*; every step must succeed."""
    be.start(Scenario("t.cow"))
    out = []
    for st in _steps(text):
        r = be.step(st)
        assert r.error is None and r.skipped is None, (st.text(), r)
        out.append(r)
    return out


def _step(be: LiveBackend, text: str, before: str) -> StepResult:
    """Do the one step *text*; *before* is the scenario so far (for the parser's checks)."""
    st = _steps(before + "\n" + text)[-1]
    return be.step(st)


def _obs(be: LiveBackend) -> dict[tuple[str, str, int], PageObs]:
    return {o.key: o for o in be.observe()}


# -- the scenarios ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEC_LIVE)
def test_spec_scenario_passes_live(live: None, name: str) -> None:
    t = run(parse_file(LIBRARY / f"{name}.cow"), LiveBackend())
    assert t.verdict == "pass", t.reason
    assert t.unobservable == 0


@pytest.mark.parametrize("path", PREDICTIONS, ids=lambda p: p.stem)
def test_prediction_scenario_passes_live(live: None, path: Path) -> None:
    t = run(parse_file(path), LiveBackend())
    assert t.verdict == "pass", t.reason
    assert t.unobservable == 0


def test_predictions_cover_the_reference() -> None:
    """kernel-semantics §15 predictions 1–20 (but 21, not testable here) have scenarios."""
    numbers = {p.name[1:3] for p in PREDICTIONS}
    assert {f"{n:02d}" for n in range(1, 21)} <= numbers
    for p in PREDICTIONS:
        s = parse_file(p)
        assert s.title and s.about, p.name
        assert any(True for st in s.stmts if not isinstance(st, Step)), p.name


def test_hugetlb_vmsplice_is_an_expected_failure_live(live: None) -> None:
    """The kernel's selftest marks it xfail too: hugetlb reuse ignores the pipe's pages."""
    t = run(parse_file(LIBRARY / "hugetlb-vmsplice-unmap-child.cow"), LiveBackend())
    assert t.verdict == "xfail", t.reason
    assert "seen == \"old\"" in t.reason  # it got that far: the pipe took all 2 MiB


@pytest.mark.parametrize("path", DISAGREEMENTS, ids=lambda p: p.stem)
def test_disagreement_holds_on_the_kernel(live: None, path: Path) -> None:
    """Each disagreement scenario describes what the kernel does (it passes live) and the
    model at the kernel's version observes something else. When the model learns it, the
    scenario belongs with the others."""
    scen = parse_file(path)
    lt = run(scen, LiveBackend())
    assert lt.verdict in ("pass", "xfail"), lt.reason  # xfail: the kernel refuses a step
    mt = run(scen, ModelBackend(lt.version))
    if mt.verdict == lt.verdict and not diff(mt, lt):
        pytest.fail(f"{path.name}: the model now agrees with the kernel; move the scenario "
                    "out of disagreements/")


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.stem)
def test_library_agrees_with_model_live(live: None, path: Path) -> None:
    """Every library scenario: the live verdict is as expected, and the model at the
    running kernel's version observes exactly what the kernel does."""
    scen = parse_file(path)
    lt = run(scen, LiveBackend())
    assert lt.verdict in ("pass", "xfail", "skip"), lt.reason
    if path.parent.name == "cow":
        want = selftest_result(scen.title)
        assert lt.verdict == want, f"selftest here: {want}; live: {lt.verdict} {lt.reason}"
    mt = run(scen, ModelBackend(lt.version))
    divs = diff(mt, lt)
    assert not divs, "\n".join(d.describe("model", "live") for d in divs)


def selftest_result(title: str) -> str:
    """What the kernel's own cow selftest reported for this case on this machine
    (live-kernel.md §6: every anon case passes, the hugetlb vmsplice cases are XFAIL, every
    R/O GUP pin case skips for want of gup_test — anonex's O_DIRECT variants run instead)."""
    if "vmsplice" in title and title.endswith("with hugetlb"):
        return "xfail"
    held_ro_pin = (title.startswith("R/O GUP") and "(O_DIRECT)" not in title) or \
        title.startswith("R/O longterm GUP")
    return "skip" if held_ro_pin else "pass"


def test_backend_object_runs_several_scenarios(live: None) -> None:
    be = LiveBackend()
    for name in SPEC_LIVE[:3]:
        assert run(parse_file(LIBRARY / f"{name}.cow"), be).verdict == "pass"
    assert not be.running


@pytest.mark.parametrize("text,why", [
    ("P0: mmap A anon 1\nP0: pin A -> h ro", "read-only long-term"),
    ("P0: mmap A anon 1\nP0: pin A -> h fast", "GUP-fast"),
    ("P0: mmap A anon 1\nP0: pin A -> h rw", "short-term pin"),
    ("P0: mmap A anon 1\nP0: migrate A", "not targetable on one node"),
])
def test_unsupported_steps_skip_with_reason(live: None, text: str, why: str) -> None:
    t = run(parse('title "t"\n' + text, "t.cow"), LiveBackend())
    assert t.verdict == "skip"
    assert why in t.reason


# -- observation -----------------------------------------------------------------------------


def _raw_state(be: LiveBackend) -> dict[tuple[str, str, int], tuple[int, int, int]]:
    """(pagemap entry, kpageflags without timing bits, kpagecount) of every page."""
    volatile = sum(1 << b for b in kpf.KPF_VOLATILE)
    out = {}
    with open("/proc/kpageflags", "rb") as kf, open("/proc/kpagecount", "rb") as kc:
        for proc, pid in be.running.items():
            with open(f"/proc/{pid}/pagemap", "rb") as f:
                for region, (addr, n) in be.regions.items():
                    f.seek(addr // PAGE * 8)
                    for i, e in enumerate(pm.decode_bytes(f.read(8 * n))):
                        flags = count = 0
                        if e.pfn is not None:
                            kf.seek(e.pfn * 8)
                            flags = int.from_bytes(kf.read(8), "little") & ~volatile
                            kc.seek(e.pfn * 8)
                            count = int.from_bytes(kc.read(8), "little")
                        out[(proc, region, i)] = (e.raw, flags, count)
    return out


def _snapshot(obs: list[PageObs]) -> list[dict[str, Any]]:
    out = []
    for o in obs:
        d = o.to_json()
        d["ident"] = o.ident
        d.get("extra", {}).pop("kpf", None)  # LRU/ACTIVE/REFERENCED flip with LRU batches
        out.append(d)
    return out


def test_observe_has_no_side_effects(backend: LiveBackend) -> None:
    setup = """
P0: mmap A anon 4
P0: write A[0..1] "x"
P0: touch A[2]
P0: fork P1
P1: write A[1] "child"
P0: mprotect A[0] ro
"""
    _start(backend, setup)
    before = _raw_state(backend)
    first = backend.observe()
    for _ in range(5):
        again = backend.observe()
    assert _snapshot(first) == _snapshot(again)
    assert _raw_state(backend) == before
    o = {x.key: x for x in again}
    assert o[("P0", "A", 2)].zero is True
    assert o[("P0", "A", 3)].state == "none"
    assert o[("P0", "A", 0)].data == "x" and o[("P1", "A", 1)].data == "child"
    # observing many times must not leave a page reference behind that turns the next
    # write's reuse into a copy (a /proc/PID/mem read does: per-CPU activate batch)
    pfn = o[("P0", "A", 1)].ident
    assert o[("P0", "A", 1)].mapcount == 1 and o[("P0", "A", 1)].anon_exclusive is False
    r = _step(backend, 'P0: write A[1] "parent"', setup)
    assert r.faults == 1
    after = _obs(backend)[("P0", "A", 1)]
    assert after.ident == pfn, "the write copied: an observation held a page reference"
    assert after.anon_exclusive is True


def test_observe_reports_what_the_process_maps(backend: LiveBackend) -> None:
    _start(backend, """
P0: mmap A anon 2
P0: mmap B anon 1
P0: write A "a"
P0: write B "b"
P0: madvise B dontfork
P0: fork P1
P0: munmap A[1]
""")
    o = _obs(backend)
    assert ("P1", "B", 0) not in o  # DONTFORK: the child has no such mapping
    assert o[("P0", "A", 1)].state == "none"  # unmapped page of a mapped region
    assert o[("P0", "A", 0)].extra["pm56"] == 0 and o[("P0", "A", 0)].mapcount == 2
    assert o[("P0", "B", 0)].extra["pm56"] == 1
    assert o[("P0", "B", 0)].ident is not None and o[("P0", "B", 0)].data == "b"
    assert kpf.has(o[("P0", "B", 0)].extra["kpf"], kpf.KPF_ANON)


def test_prot_none_page_is_observed_without_data(backend: LiveBackend) -> None:
    setup = 'P0: mmap A anon 1\nP0: write A "x"'
    _start(backend, setup)
    st = Step("mprotect", Pos("t.cow", 1, 1), proc="P0", loc=Loc("A"), word="none")
    assert backend.step(st).error is None
    o = _obs(backend)[("P0", "A", 0)]
    assert o.state == "present" and o.data is None and o.anon_exclusive is True
    r = _step(backend, "P0: read A[0] -> v", setup)
    assert r.error is not None and "SIGSEGV" in r.error and "A[0]" in r.error


# -- fault counts ----------------------------------------------------------------------------


def test_warmup_gives_zero_for_a_second_write(backend: LiveBackend) -> None:
    res = _start(backend, """
P0: mmap A anon 1
P0: mmap B anon 2
P0: write A "a"
P0: write A "b"
P0: fork P1
P1: write B[0] "fresh"
P1: write B[0] "again"
P1: write B "both"
P1: read B[1] -> v
P1: touch B[0]
""")
    faults = [r.faults for r in res]
    assert faults[2:4] == [1, 0]      # parent: fresh page, then no fault
    assert faults[5:7] == [1, 0]      # child right after fork: interpreter heap is COW-shared
    assert faults[7] == 1             # B[1] is new, B[0] is not: one access, >= 1 fault
    assert faults[8:] == [0, 0]


def test_remote_gup_faults_are_counted(backend: LiveBackend) -> None:
    res = _start(backend, """
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P0: peek P1 A[0] -> v
P0: peek P1 A[0] -> w
P0: dio-write A[0] -> d
P0: dio-write A[0] -> e
""")
    assert [r.faults for r in res[3:]] == [1, 0, 1, 0]  # unshare faults, then none
    assert [r.value for r in res[3:]] == ["x", "x", "x", "x"]


def test_write_into_read_only_mapping_is_an_error_not_a_crash(backend: LiveBackend) -> None:
    setup = 'P0: mmap A anon 1\nP0: write A "x"\nP0: mprotect A ro'
    _start(backend, setup)
    r = _step(backend, 'P0: write A "boom"', setup)
    assert r.error is not None and "SIGSEGV" in r.error
    assert _step(backend, "P0: read A[0] -> v", setup).value == "x"  # the actor lives on


# -- cleanup ---------------------------------------------------------------------------------

THREE = """
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: fork P2
P2: vmsplice A -> p
P0: pin A -> h
P2: dio-read A[0] "d"
"""


def test_finish_leaves_nothing_behind(backend: LiveBackend) -> None:
    _start(backend, THREE)
    pids = backend.pids
    dirs = backend.directories
    assert len(pids) == 3 and all(not _gone(p) for p in pids.values())
    assert dirs and all(os.path.isdir(d) for d in dirs)
    backend.finish()
    assert all(_gone(p) for p in pids.values()), pids
    assert not any(os.path.exists(d) for d in dirs)
    backend.finish()  # idempotent
    assert backend.observe() == []


def test_finish_after_an_exception_inside_a_step(live: None) -> None:
    class Boom(LiveBackend):
        def step(self, step: Step) -> StepResult:
            if step.op == "dio_read":
                raise RuntimeError("injected")
            return super().step(step)

    be = Boom()
    with pytest.raises(RuntimeError, match="injected"):
        run(parse('title "t"\n' + THREE, "t.cow"), be)
    assert len(be.pids) == 3
    assert all(_gone(p) for p in be.pids.values()), be.pids


def test_actor_killed_mid_run(backend: LiveBackend) -> None:
    _start(backend, THREE)
    pids = backend.pids
    os.kill(pids["P1"], signal.SIGKILL)
    r = _step(backend, 'P1: write A "y"', THREE)
    assert r.error is not None and "P1" in r.error
    o = _obs(backend)
    assert {k[0] for k in o} == {"P0", "P2"}
    assert _step(backend, "P2: read p -> v", THREE).value == "x"  # the others go on
    backend.finish()
    assert all(_gone(p) for p in pids.values()), pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_driver_killed_by_signal_cleans_up(live: None, sig: int) -> None:
    code = f"""
import json, time
from anonex.live.backend import LiveBackend
from anonex.scenario.parser import parse
be = LiveBackend()
scen = parse({('title "t"' + THREE)!r}, "t.cow")
be.start(scen)
for st in scen.steps:
    assert be.step(st).error is None
print(json.dumps([list(be.pids.values()), be.directories]), flush=True)
time.sleep(60)
"""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo / "src"))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    pids, dirs = json.loads(proc.stdout.readline())
    assert len(pids) == 3 and not any(_gone(p) for p in pids)
    proc.send_signal(sig)
    proc.wait(timeout=20)
    deadline = time.monotonic() + 5  # the last orphans are reaped by init after the driver
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(p) for p in pids), pids
    assert not any(os.path.exists(d) for d in dirs)


def test_exit_reaps_and_orphans_are_ours(backend: LiveBackend) -> None:
    _start(backend, THREE + "P1: exit\nP0: exit\n")
    pids = backend.pids
    assert _gone(pids["P1"]) and _gone(pids["P0"])
    assert backend.running == {"P2": pids["P2"]}
    assert _step(backend, "P2: read A[0] -> v", THREE).value == "d"
    assert _step(backend, 'P0: write A "z"', THREE).error is not None


# -- availability ----------------------------------------------------------------------------


def test_available_answers_with_a_reason() -> None:
    ok, why = available()
    assert isinstance(ok, bool)
    assert ok == (why == "")


def test_available_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ok, why = available()
    assert not ok and "root" in why


def test_require_live_turns_skips_into_failures(tmp_path: Path) -> None:
    (tmp_path / "pretend_no_live.py").write_text(
        "import anonex.live\nanonex.live.available = lambda: (False, 'pretend: no root')\n")
    repo = Path(__file__).resolve().parents[1]
    target = "tests/test_live_backend.py::test_warmup_gives_zero_for_a_second_write"
    for require, outcome in (("0", "1 skipped"), ("1", "1 error")):  # fails in the fixture
        env = dict(os.environ, ANONEX_REQUIRE_LIVE=require,
                   PYTHONPATH=f"{tmp_path}{os.pathsep}{repo / 'src'}")
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "pretend_no_live",
                            "-p", "no:cacheprovider", target],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert outcome in r.stdout, r.stdout
        assert (r.returncode == 0) == (require == "0")
        assert "pretend: no root" in r.stdout


def test_start_raises_live_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_backend, "available", lambda: (False, "no kpageflags here"))
    be = LiveBackend()
    with pytest.raises(LiveUnavailable, match="no kpageflags here"):
        be.start(Scenario("t.cow"))
    assert be.pids == {}


def test_environment_is_recorded(backend: LiveBackend) -> None:
    backend.start(Scenario("t.cow"))
    env = backend.environment()
    assert env["kernel"] == os.uname().release
    assert env["page_size"] == PAGE
    assert env["cpu_pinned"] in os.sched_getaffinity(0)
    assert {"thp_enabled", "mthp", "swaps", "ksm_run", "hugetlb_nr_hugepages"} <= set(env)
    with open(f"/proc/{backend.pids['P0']}/status") as f:
        allowed = next(line for line in f if line.startswith("Cpus_allowed_list"))
    assert allowed.split()[-1] == str(env["cpu_pinned"])


KEPT = ["swap-roundtrip", "ksm-merge-then-write", "thp-write-while-shared",
        "hugetlb-vmsplice-unmap-child", "predictions/p08-dio-write-shared-unshares",
        "iouring-fixed-buffer-fork", "memory/swap-readahead", "basic-cow-after-fork"]


def test_a_kept_machine_gives_the_same_runs_and_is_restored_at_close(live: None) -> None:
    """keep=True (a booted kernel's guest): the machine is set up once for many scenarios;
    each still observes what the model does, in any order, and close() restores it all."""
    from anonex.live import machine

    before = machine.environment()
    be = LiveBackend(keep=True)
    try:
        for name in KEPT + KEPT[::-1]:
            scen = parse_file(LIBRARY / f"{name}.cow")
            lt = run(scen, be)
            assert lt.verdict in ("pass", "xfail"), f"{name}: {lt.reason}"
            divs = diff(run(scen, ModelBackend(lt.version)), lt)
            assert not divs, "\n".join(d.describe("model", "live") for d in divs)
            assert not be.running
            assert be.directories  # the machine stays set up between scenarios
        dirs = be.directories
    finally:
        be.close()
    assert not any(os.path.exists(d) for d in dirs)
    assert machine.environment() == before
    be.close()  # idempotent
