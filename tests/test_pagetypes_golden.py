"""``anonex page-types`` against the kernel's ``tools/mm/page-types`` on saved dumps.

``tests/fixtures/page-types/`` holds dumps made on a 6.18 machine (see its
``make_fixtures.py``): a slice of kpageflags/kpagecount/kpagecgroup with every kind of page
in it, the pagemap and maps of a process with anonymous, THP, KSM, zero, shmem, file,
mlocked, swapped, mTHP and hugetlb pages, and the pagemap entries of a file's pages. For
every option combination in ``cases.json``, ``golden/<case>.txt`` is what the C tool
printed reading exactly those files; anonex must print the same.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anonex.pagetypes import proc
from anonex.pagetypes.cli import main, usage

FIX = Path(__file__).parent / "fixtures" / "page-types"
GOLDEN = FIX / "golden"
CASES: list[dict[str, Any]] = json.loads((FIX / "cases.json").read_text())
WINDOWS = json.loads((FIX / "windows.json").read_text())
PAGE = 4096


def anonex_args(case: dict[str, Any]) -> list[str]:
    """The anonex command line for a case: the C tool's options, plus the saved files it
    read through bind mounts given as options."""
    args = [str(a) for a in case["args"]]
    if case["kind"] == "pid":
        args = ["4242" if a == "{pid}" else a for a in args]
        args += ["--maps", str(FIX / "proc.maps"), "--pagemap", str(FIX / "proc.pagemap")]
    if case["kind"] != "describe":
        args += ["-F", str(FIX / "slice.kpageflags"),
                 "--kpagecount", str(FIX / "slice.kpagecount"),
                 "--kpagecgroup", str(FIX / "slice.kpagecgroup")]
    return args


def replay_file_pagemap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make ``-f`` see the recorded pagemap entries of the fixture file."""
    entries = np.fromfile(FIX / "file.pagemap", dtype="<u8")

    def chunk(fd: int, offset: int, npages: int, name: str) -> np.ndarray:
        out = np.zeros(npages, dtype=np.uint64)
        part = entries[offset // PAGE:offset // PAGE + npages]
        out[:len(part)] = part
        return out

    monkeypatch.setattr(proc, "file_chunk_entries", chunk)
    f = WINDOWS["file"]
    (tmp_path / f["name"]).write_bytes(b"\0" * f["size"])
    monkeypatch.chdir(tmp_path)


def normalise(text: str) -> str:
    """Mask what differs between any two runs of ``-f``: inode and times of the file."""
    text = re.sub(r"\tInode: \d+\t", "\tInode: N\t", text)
    return re.sub(r"^(Modify|Access): .*$", r"\1: T", text, flags=re.M)


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(args, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_output_as_page_types(case: dict[str, Any], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if case["kind"] == "file":
        replay_file_pagemap(monkeypatch, tmp_path)
    rc, out, err = run(anonex_args(case))
    expected = (GOLDEN / f"{case['name']}.txt").read_text()
    expected_rc = int((GOLDEN / f"{case['name']}.rc").read_text())
    assert rc == expected_rc, err
    assert normalise(out) == normalise(expected)


def test_the_cases_cover_every_option() -> None:
    used = set()
    for c in CASES:
        for a in c["args"]:
            if a.startswith("--"):
                used.add(a[2:].split("=")[0])
            elif a.startswith("-"):
                used.update(a[1:])
    for opt in "rdabpfcClLMN":
        assert opt in used, opt
    assert {"raw", "bits", "list"} <= used


def test_long_kpageflags_reads_the_file() -> None:
    """page-types' ``--kpageflags FILE`` silently reads the live file; ours reads FILE."""
    base = anonex_args({"kind": "pfn", "args": ["-r"]})
    i = base.index("-F")
    for form in (["--kpageflags", base[i + 1]], [f"--kpageflags={base[i + 1]}"],
                 [f"-F{base[i + 1]}"], ["--kpagef", base[i + 1]]):
        rc, out, err = run(base[:i] + form + base[i + 2:])
        assert rc == 0, err
        assert out == (GOLDEN / "raw.txt").read_text()


def test_help_has_page_types_options_and_bit_names() -> None:
    c_help = (GOLDEN / "help.txt").read_text()
    ours = usage()
    for line in c_help.splitlines()[1:]:
        if line.lstrip().startswith(("-X|", "-x|")):
            continue
        assert line in ours.splitlines(), line
    bits = c_help[c_help.index("bit-names:"):]
    assert ours.endswith(bits)
    assert "-X|--hwpoison" in ours and "not supported" in ours
    rc, out, _ = run(["-h"])
    assert rc == 0 and out == ours
