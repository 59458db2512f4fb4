"""Leave the machine as it was: a registry of cleanups that run on every way out.

:class:`SystemState` records system-wide settings (a sysfs/procfs file and its original
value) before changing them, and actions that need an undo (``swapon`` → ``swapoff``, a
zram device set up → reset), and undoes all of them in reverse order when the context
exits. Cleanups of every active context (and of any callable registered with
:func:`register_cleanup`, e.g. "kill my actors") also run from an ``atexit`` hook and
from SIGTERM/SIGINT handlers, which then hand the signal on to whatever handler was there
before. Everything runs at most once.

Only the process that registered a cleanup runs it: a forked child that inherits the
handlers does nothing (it just takes the signal's default action).

SIGKILL leaves no handler a chance. For that, a :class:`SystemState` given a *journal*
path keeps its undo stack in that file (JSON, rewritten atomically on every change, removed
once everything is restored); :func:`recover` undoes what a killed process left there. The
undo steps are therefore data, not closures: restore a file, write a value, ``swapoff``,
run a command, remove a directory.

How it fails: a setting that cannot be read is reported as ``OSError`` by
:meth:`SystemState.set` before anything is changed; a setting that cannot be restored is
reported on stderr and the remaining ones are still restored (:meth:`SystemState.restore`
returns the failures).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

_lock = threading.RLock()
_cleanups: dict[int, Callable[[], object]] = {}
_ids = itertools.count(1)
_owner = os.getpid()
_installed = False
_previous: dict[int, Any] = {}
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def register_cleanup(fn: Callable[[], object]) -> int:
    """Run *fn* on exit or SIGTERM/SIGINT unless unregistered first; returns a token."""
    _install()
    with _lock:
        token = next(_ids)
        _cleanups[token] = fn
    return token


def unregister_cleanup(token: int) -> None:
    with _lock:
        _cleanups.pop(token, None)


def run_cleanups() -> None:
    """Run (and drop) every registered cleanup, newest first. Never raises."""
    if os.getpid() != _owner:
        return
    with _lock:
        todo = sorted(_cleanups.items(), reverse=True)
        _cleanups.clear()
    for _, fn in todo:
        try:
            fn()
        except BaseException as e:  # cleanup must go on
            print(f"anonex: cleanup failed: {e!r}", file=sys.stderr)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner:  # an inherited handler in a forked child
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    run_cleanups()
    prev = _previous.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install() -> None:
    global _installed, _owner
    with _lock:
        if _installed and _owner == os.getpid():
            return
        _owner = os.getpid()
        _installed = True
        atexit.register(run_cleanups)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for s in _SIGNALS:
            prev = signal.getsignal(s)
            if prev is _on_signal:
                continue
            _previous[s] = prev
            signal.signal(s, _on_signal)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


BUSY_RETRY = 3.0  # seconds an undo keeps trying a setting the kernel says is busy
KSM_SETTLE_TIMEOUT = 10.0  # seconds ksmd may take for its two cleaning scans


def _write_retrying(path: str, value: str, timeout: float = BUSY_RETRY) -> None:
    """Write *value* to *path*, again for a while on EBUSY: KSM's max_page_sharing and
    merge_across_nodes refuse a change while a KSM page is still mapped, which the exit of
    the run's last actors may not have finished undoing yet (seen on a 7.2 guest)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _write(path, value)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _ksm_settle(ksm: str, timeout: float = KSM_SETTLE_TIMEOUT) -> None:
    """ksmd runs until ``full_scans`` has advanced by two (or *timeout*), then stops."""
    before = int(_read(f"{ksm}/full_scans"))
    _write(f"{ksm}/run", "1")
    try:
        deadline = time.monotonic() + timeout
        while int(_read(f"{ksm}/full_scans")) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        _write(f"{ksm}/run", "0")


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while the body runs (e.g. between a change to the system and
    recording its undo); a signal that came meanwhile is delivered right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


UNDO_KINDS = ("file", "write", "swapoff", "command", "rmtree", "ksm_settle")


@dataclass(frozen=True, slots=True)
class Undo:
    """One step that puts something back.

    ``file``: write ``args[1]`` (the original value) to the file ``args[0]``; ``write``:
    write ``args[1]`` to ``args[0]`` (e.g. ``1`` to a zram ``reset``); ``swapoff``: stop
    swapping on ``args[0]``; ``command``: run ``args`` as a command; ``rmtree``: remove the
    directory ``args[0]`` with what it holds; ``ksm_settle``: let ksmd (``args[0]`` is
    /sys/kernel/mm/ksm) do two full scans and stop it, so that it drops what it still
    counts of the run's exited processes (until a scan notices an exited mm, its pages stay
    in ``pages_shared``, and max_page_sharing/merge_across_nodes cannot be restored).
    """

    kind: str
    args: tuple[str, ...]

    def describe(self) -> str:
        if self.kind == "file":
            return f"restore {self.args[0]} to {self.args[1]!r}"
        if self.kind == "write":
            return f"write {self.args[1]!r} to {self.args[0]}"
        return f"{self.kind} {' '.join(self.args)}"

    def run(self) -> None:
        if self.kind in ("file", "write"):
            _write_retrying(self.args[0], self.args[1])
        elif self.kind == "swapoff":
            from anonex.live import libc

            libc.swapoff(self.args[0])
        elif self.kind == "command":
            import subprocess

            subprocess.run(list(self.args), check=True, capture_output=True)
        elif self.kind == "rmtree":
            import shutil

            shutil.rmtree(self.args[0], ignore_errors=True)
        elif self.kind == "ksm_settle":
            _ksm_settle(self.args[0])
        else:
            raise ValueError(f"unknown undo kind {self.kind!r}")


def _undo_stack(stack: list[Undo]) -> list[tuple[str, str]]:
    """Run every undo, newest first (emptying *stack*); returns what failed."""
    failed: list[tuple[str, str]] = []
    while stack:
        u = stack.pop()
        try:
            u.run()
        except Exception as e:
            print(f"anonex: could not {u.describe()}: {e}", file=sys.stderr)
            failed.append((u.args[0], u.args[1]) if u.kind == "file"
                          else (u.describe(), ""))
    return failed


class SystemState:
    """A context that changes system settings and puts them back on every exit path.

    ``with SystemState() as st: st.set("/sys/kernel/mm/ksm/run", "1")`` records the file's
    value before the first change and restores it on exit, on an exception, at interpreter
    exit and on SIGTERM/SIGINT. Files whose value reads back as a ``[selected]`` menu (THP
    settings) are restored to the selected word. :meth:`on_restore` adds an action to the
    same stack (``st.on_restore("swapoff", "/dev/zram0")``), so settings and actions come
    back strictly in reverse order of the changes. With a *journal* path the stack is also
    kept in that file, for :func:`recover` after a SIGKILL.
    """

    def __init__(self, journal: str | None = None) -> None:
        self._stack: list[Undo] = []
        self._token: int | None = None
        self.journal = journal

    @property
    def saved(self) -> list[tuple[str, str]]:
        """(path, original value) for every setting changed so far, oldest first."""
        return [(u.args[0], u.args[1]) for u in self._stack if u.kind == "file"]

    @property
    def actions(self) -> list[str]:
        """What each recorded undo action does, oldest first."""
        return [u.describe() for u in self._stack if u.kind != "file"]

    def original(self, path: str) -> str | None:
        """The recorded original value of *path* (``None`` if it was never changed)."""
        for u in self._stack:
            if u.kind == "file" and u.args[0] == path:
                return u.args[1]
        return None

    def __enter__(self) -> SystemState:
        self._token = register_cleanup(self.restore)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def _push(self, u: Undo) -> None:
        self._stack.append(u)
        self._write_journal()

    def _write_journal(self) -> None:
        if self.journal is None:
            return
        if not self._stack:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal)
            return
        data = {"pid": os.getpid(), "undo": [[u.kind, *u.args] for u in self._stack]}
        tmp = f"{self.journal}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.journal)

    def record(self, path: str, original: str | None = None) -> None:
        """Remember *path*'s current value (once) so that it is restored later."""
        if self.original(path) is not None:
            return
        value = _read(path) if original is None else original
        if "[" in value and "]" in value:  # "always [madvise] never" -> "madvise"
            value = value[value.index("[") + 1:value.index("]")]
        self._push(Undo("file", (path, value)))

    def on_restore(self, kind: str, *args: str) -> None:
        """Undo with *kind* (see :class:`Undo`) when the state is restored, in reverse order
        with everything else (record it right after the change it undoes, inside
        :func:`deferred_signals`)."""
        if kind not in UNDO_KINDS or kind == "file":
            raise ValueError(f"on_restore: unknown kind {kind!r}")
        self._push(Undo(kind, tuple(args)))

    def set(self, path: str, value: str) -> None:
        """Record *path*'s value, then write *value* to it."""
        self.record(path)
        _write(path, value)

    def restore(self) -> list[tuple[str, str]]:
        """Write every recorded value back and run every undo action, newest first; returns
        what could not be undone: (path, value) for files, (what, "") for actions."""
        with deferred_signals():  # a Ctrl-C now would only interrupt the undoing
            failed = _undo_stack(self._stack)
            with contextlib.suppress(OSError):
                self._write_journal()  # empty: the journal goes
        if self._token is not None:
            unregister_cleanup(self._token)
            self._token = None
        return failed


def recover(journal: str) -> list[str]:
    """Undo what a process that was killed before restoring left in *journal* (the caller
    must make sure that process is gone, e.g. by holding the lock it held). Returns what
    was undone; the journal is removed."""
    try:
        with open(journal) as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        print(f"anonex: unreadable journal {journal}: {e}", file=sys.stderr)
        data = {"undo": []}
    stack = [Undo(str(e[0]), tuple(str(a) for a in e[1:])) for e in data.get("undo", [])
             if e and e[0] in UNDO_KINDS]
    done = [u.describe() for u in reversed(stack)]
    with deferred_signals():
        _undo_stack(stack)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal)
    return done
