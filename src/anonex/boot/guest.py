"""What runs inside a booted kernel: every scenario on the live backend, in one process.

``python -m anonex.boot.guest OUT SCENARIOS`` reads the scenarios the host parsed (a pickled
list: the guest needs neither the grammar nor the files, and parsing 252 files with lark
under emulation took 20 s), runs each on the live backend wrapped in a
:class:`~anonex.boot.record.Recorder` and appends one JSON line per scenario to OUT (a file
in a directory the host shares with the guest), flushed and synced as soon as it is
written, so the host can diff each scenario with the model while the guest goes on. The
first line (``hello``) says which kernel this is and what the live backend detected; the
last (``done``) how long it all took. Nothing of the model runs here: under emulation it
would cost minutes.

A backend that fails in an unexpected way is recorded as such for that scenario and the
next one runs.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import traceback
from typing import IO, Any

from anonex.boot.record import Recorder
from anonex.runner import run
from anonex.scenario.ast import Scenario


def _emit(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()
    os.fsync(out.fileno())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m anonex.boot.guest OUT SCENARIOS", file=sys.stderr)
        return 2
    out_path, scen_path = argv
    started = _uptime()
    with open(scen_path, "rb") as f:
        scens: list[Scenario] = pickle.load(f)
    t0 = time.monotonic()
    with open(out_path, "a") as out:
        try:
            from anonex.live.backend import LiveBackend

            live = LiveBackend(keep=True)  # set the machine up once for every scenario
        except Exception as e:  # the live backend cannot even be made here
            _emit(out, {"kind": "hello", "error": f"{type(e).__name__}: {e}"})
            return 1
        rec = Recorder(live)
        _emit(out, {"kind": "hello", "version": str(live.version),
                    "release": os.uname().release, "uname_v": os.uname().version,
                    "uptime_at_main": started, "boot_seconds": _uptime()})
        for scen in scens:
            t1 = time.monotonic()
            line: dict[str, Any] = {"kind": "scenario", "path": scen.path}
            try:
                run(scen, rec)
            except Exception as e:
                if not rec.events or "raise" not in rec.events[-1]:
                    line["error"] = "".join(traceback.format_exception_only(e)).strip()
            line["events"] = rec.events
            line["seconds"] = round(time.monotonic() - t1, 3)
            _emit(out, line)
        live.close()
        _emit(out, {"kind": "done", "seconds": round(time.monotonic() - t0, 3)})
    return 0


def _uptime() -> float | None:
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _profiled(argv: list[str], dest: str) -> int:
    """``ANONEX_GUEST_PROFILE=FILE``: the guest's run under cProfile, stats to FILE (in a
    directory the host shares), to see where an emulated guest spends its time."""
    import cProfile

    prof = cProfile.Profile()
    try:
        return prof.runcall(main, argv)
    finally:
        prof.dump_stats(dest + ".tmp")
        os.rename(dest + ".tmp", dest)


if __name__ == "__main__":  # pragma: no cover - runs inside the guest
    where = os.environ.get("ANONEX_GUEST_PROFILE")
    sys.exit(_profiled(sys.argv[1:], where) if where else main(sys.argv[1:]))
