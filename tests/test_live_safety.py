"""anonex.live.safety: settings come back on every way out (plain files stand in for sysfs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anonex.live import safety


def _file(tmp_path: Path, name: str, value: str) -> Path:
    p = tmp_path / name
    p.write_text(value + "\n")
    return p


def test_restores_on_exit_in_reverse_order(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "1")
    b = _file(tmp_path, "b", "always [madvise] never")
    with safety.SystemState() as st:
        st.set(str(a), "2")
        st.set(str(a), "3")  # recorded once: the original wins
        st.set(str(b), "never")
        assert a.read_text() == "3"
        assert [p for p, _ in st.saved] == [str(a), str(b)]
        assert st.saved[1][1] == "madvise"  # a [selected] menu is restored to the word
    assert a.read_text() == "1"
    assert b.read_text() == "madvise"


def test_restores_on_exception(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "old")
    with pytest.raises(RuntimeError), safety.SystemState() as st:
        st.set(str(a), "new")
        raise RuntimeError("boom")
    assert a.read_text() == "old"


def test_restore_failure_is_reported_and_others_still_restored(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "1")
    b = _file(tmp_path, "b", "x")
    st = safety.SystemState().__enter__()
    st.set(str(a), "2")
    st.set(str(b), "y")
    b.unlink()
    b.mkdir()  # cannot be written back
    failed = st.restore()
    assert failed == [(str(b), "x")]
    assert a.read_text() == "1"


def test_run_cleanups_runs_each_once_newest_first() -> None:
    seen: list[int] = []
    safety.register_cleanup(lambda: seen.append(1))
    t2 = safety.register_cleanup(lambda: seen.append(2))
    safety.register_cleanup(lambda: seen.append(3))
    safety.unregister_cleanup(t2)
    safety.run_cleanups()
    safety.run_cleanups()
    assert seen == [3, 1]


def _child(code: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_restores_on_signal(tmp_path: Path, sig: int) -> None:
    a = _file(tmp_path, "a", "orig")
    proc = _child(f"""
        import time
        from anonex.live import safety
        st = safety.SystemState().__enter__()
        st.set({str(a)!r}, "changed")
        print("ready", flush=True)
        time.sleep(30)
    """)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert a.read_text() == "changed"
    proc.send_signal(sig)
    proc.wait(timeout=10)
    assert a.read_text() == "orig"
    assert proc.returncode != 0  # the signal still ends the process


def test_restores_at_interpreter_exit(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "orig")
    proc = _child(f"""
        from anonex.live import safety
        st = safety.SystemState().__enter__()
        st.set({str(a)!r}, "changed")
    """)
    proc.wait(timeout=10)
    assert a.read_text() == "orig"


def test_forked_child_does_not_restore(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "orig")
    st = safety.SystemState().__enter__()
    try:
        st.set(str(a), "changed")
        pid = os.fork()
        if pid == 0:
            safety.run_cleanups()  # inherited registry: must do nothing here
            os._exit(0)
        os.waitpid(pid, 0)
        assert a.read_text() == "changed"
    finally:
        st.restore()
    assert a.read_text() == "orig"


def test_actions_and_files_are_undone_in_reverse_order(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "1")
    log = tmp_path / "log"
    st = safety.SystemState().__enter__()
    st.set(str(a), "2")
    st.on_restore("write", str(log), "written last, so undone first")
    st.on_restore("command", sys.executable, "-c",
                  f"open({str(log)!r}, 'a').write(' and then the command')")
    assert st.actions == [f"write 'written last, so undone first' to {log}",
                          f"command {sys.executable} -c open({str(log)!r}, 'a')"
                          ".write(' and then the command')"]
    assert st.restore() == []
    assert log.read_text() == "written last, so undone first"  # command ran first, then write
    assert a.read_text() == "1"
    with pytest.raises(ValueError):
        st.on_restore("file", "x", "y")


def test_journal_follows_the_stack_and_goes_away(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "orig")
    journal = tmp_path / "journal"
    st = safety.SystemState(journal=str(journal)).__enter__()
    st.set(str(a), "changed")
    st.on_restore("write", str(tmp_path / "b"), "x")
    data = json.loads(journal.read_text())
    assert data["pid"] == os.getpid()
    assert data["undo"] == [["file", str(a), "orig"], ["write", str(tmp_path / "b"), "x"]]
    st.restore()
    assert not journal.exists()
    assert a.read_text() == "orig"


def test_recover_undoes_what_a_killed_process_left(tmp_path: Path) -> None:
    a = _file(tmp_path, "a", "orig")
    journal = tmp_path / "journal"
    proc = _child(f"""
        import os, signal
        from anonex.live import safety
        st = safety.SystemState(journal={str(journal)!r}).__enter__()
        st.set({str(a)!r}, "changed")
        st.on_restore("write", {str(tmp_path / "undone")!r}, "yes")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert a.read_text() == "changed" and journal.exists()
    done = safety.recover(str(journal))
    assert done == [f"write 'yes' to {tmp_path / 'undone'}", f"restore {a} to 'orig'"]
    assert a.read_text() == "orig" and (tmp_path / "undone").read_text() == "yes"
    assert not journal.exists()
    assert safety.recover(str(journal)) == []  # nothing left


def test_busy_setting_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KSM refuses max_page_sharing while a KSM page is mapped (EBUSY): the undo tries
    again for a while, and gives up with the error after that."""
    import errno

    real = safety._write
    calls: list[str] = []

    def busy_twice(path: str, value: str) -> None:
        calls.append(value)
        if len(calls) <= 2:
            raise OSError(errno.EBUSY, "busy")
        real(path, value)

    f = tmp_path / "knob"
    f.write_text("1")
    monkeypatch.setattr(safety, "_write", busy_twice)
    safety.Undo("file", (str(f), "256")).run()
    assert f.read_text() == "256" and len(calls) == 3

    def always_busy(path: str, value: str) -> None:
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(safety, "_write", always_busy)
    with pytest.raises(OSError):
        safety._write_retrying(str(f), "1", timeout=0.05)
