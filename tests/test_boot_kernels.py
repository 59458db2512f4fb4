"""Real kernels of other eras, booted in a VM (anonex check --boot): an old and a new Debian
kernel run a subset of the library that exercises every live feature and the fingerprint
scenarios; the host's model at each kernel's version observes what the kernel did, and the
fingerprint reads the rules the reference (real-kernels.md §4) says each kernel has.

Slow (a boot and a dozen scenarios under software emulation: about two minutes a kernel).
Skips with the reason where kernels cannot be booted (no root, no QEMU); fails instead
under ``ANONEX_REQUIRE_LIVE=1`` (CI), as a kernel that cannot boot must.
"""

from __future__ import annotations

import os
import shutil

import pytest

from anonex.boot.backend import BootedKernel
from anonex.boot.images import resolve
from anonex.boot.vm import BootError, check_tools
from anonex.diff import diff
from anonex.fingerprint import Catalog, judge_traces
from anonex.harness.model import ModelBackend
from anonex.live import available
from anonex.runner import run
from anonex.scenario.parser import parse_file

from .conftest import LIBRARY

#: one scenario per live feature: fork and COW, vmsplice, io_uring pins, O_DIRECT on a raw
#: block device, process_vm_readv, forced /proc/PID/mem writes, swap, KSM, THP (PMD
#: mapping), hugetlb; every observation is compared with the model (swap-roundtrip on 5.10
#: too, since each step starts with the LRU batches drained)
SUBSET = ["basic-cow-after-fork.cow", "vmsplice-unmap-child.cow",
          "iouring-fixed-buffer-fork.cow", "predictions/p08-dio-write-shared-unshares.cow",
          "remote-read-unshares.cow", "predictions/p19-force-write-readonly.cow",
          "swap-roundtrip.cow", "ksm-merge-then-write.cow", "thp-write-while-shared.cow",
          "hugetlb-vmsplice-unmap-child.cow", "pinned-page-not-swapped.cow",
          "memory/hugetlb-pin-fork.cow",
          # rules the two kernels take different sides of: PT reclaim (6.14), the 7.0
          # swap-in through the swap cache (a shared mTHP comes back whole)
          "fingerprint/dontneed-keeps-pte-table.cow", "fingerprint/mthp-swapin-whole-folio.cow"]

KERNELS = {"debian:5.10": "5.10.223", "debian:7.2": "7.2.13"}

#: rules each kernel must show (real-kernels.md §4, and the kernels' sources)
SHOWN = {"debian:5.10": {"pinned_not_swapcached": True,  # the 5.10.9 backport
                         "fork_copies_pinned": True, "hugetlb_fork_copies_pinned": False,
                         "reuse_by_page_count": True, "anon_exclusive": False,
                         "thp_wp_split_fallback": True, "madv_collapse": False},
         "debian:7.2": {"kpageflags_ksm_every_anon": False, "swapin_through_cache": True,
                        "swapin_sync_bypass": False, "odirect_foll_pin": True,
                        "anon_exclusive": True, "mm_id_large_reuse": True,
                        "collapse_readonly_ptes": True, "pt_reclaim_dontneed": True}}

#: what each kernel cannot show, detected by the live backend in the guest
NOTES = {"debian:5.10": ["not PG_anon_exclusive", "no PAGEMAP_SCAN"],
         "debian:7.2": []}


@pytest.fixture(scope="module")
def bootable() -> None:
    ok, why = available()
    if ok:
        try:
            check_tools()
        except BootError as e:
            ok, why = False, str(e)
    if ok and shutil.which("apt-get") is None:
        ok, why = False, "no apt-get to fetch Debian kernels with"
    if not ok:
        if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
            pytest.fail(f"ANONEX_REQUIRE_LIVE=1 but kernels cannot be booted here: {why}")
        pytest.skip(f"kernels cannot be booted here: {why}")


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_booted_kernel_agrees_with_the_model(bootable: None, name: str) -> None:
    catalog = Catalog.load()
    subset = [parse_file(LIBRARY / f) for f in SUBSET]
    scens = subset + [c for c in catalog.scenarios if c.path not in {s.path for s in subset}]
    image = resolve(name)
    traces = []
    with BootedKernel(image, scens) as be:
        assert str(be.version) == KERNELS[name]  # the upstream version, not uname -r's ABI
        problems = []
        for s in scens:
            t = run(s, be)
            traces.append(t)
            assert t.env["accel"] in ("kvm", "tcg")
            if not t.as_expected:
                problems.append(f"{s.name}: {t.verdict}: {t.reason}")
            if t.verdict == "skip":  # a fingerprint scenario may ask what user space can't
                if s in subset:
                    problems.append(f"{s.name}: skipped on {name}: {t.reason}")
                continue
            m = run(s, ModelBackend(t.version))
            problems += [f"{s.name}: {d.describe('model', name)}" for d in diff(m, t)]
        notes = " / ".join(t.env.get("notes") or [])
        for want in NOTES[name]:
            assert want in notes
        assert not problems, "\n".join(problems)
    fp = judge_traces(name, [t for t in traces if t.scenario.path in
                             {c.path for c in catalog.scenarios}], catalog)
    assert [r.rule for r in fp.differing] == []
    assert {k: fp.observed.get(k) for k in SHOWN[name]} == SHOWN[name]


def test_a_guest_that_does_not_answer_is_reported_and_killed(
        bootable: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest that hangs (here: one given 3 s to boot) is killed with its QEMU, and the
    kernel is reported as not run, with the reason; nothing of it is left running."""
    import anonex.boot.backend as bb
    from anonex.live import LiveUnavailable

    monkeypatch.setattr(bb, "BOOT_TIMEOUT", 3.0)
    s = parse_file(LIBRARY / "basic-cow-after-fork.cow")
    be = BootedKernel(resolve("debian:7.2"), [s])
    with pytest.raises(LiveUnavailable, match=r"debian:7\.2: the guest hung"):
        run(s, be)
    g = be.session.guest
    assert g is not None and not g.alive()
    with pytest.raises(ProcessLookupError):  # the whole process group (vng, QEMU) is gone
        os.killpg(g.proc.pid, 0)
    be.close()
    assert not be.session.dir.exists()
