"""Leave the machine as it was: a registry of cleanups that run on every way out.

:class:`SystemState` records system-wide settings (a sysfs/procfs file and its original
value) before changing them, and actions that need an undo (``swapon`` → ``swapoff``, a
zram device added → removed), and undoes all of them in reverse order when the context
exits. Cleanups of every active context (and of any callable registered with
:func:`register_cleanup`, e.g. "kill my actors") also run from an ``atexit`` hook and
from SIGTERM/SIGINT handlers, which then hand the signal on to whatever handler was there
before. Everything runs at most once.

Only the process that registered a cleanup runs it: a forked child that inherits the
handlers does nothing (it just takes the signal's default action).

How it fails: a setting that cannot be read is reported as ``OSError`` by
:meth:`SystemState.set` before anything is changed; a setting that cannot be restored is
reported on stderr and the remaining ones are still restored (:meth:`SystemState.restore`
returns the failures).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import sys
import threading
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


@dataclass(slots=True)
class _Undo:
    """One thing to put back: a file and its original value, or an action."""

    what: str
    value: str | None = None  # the file's original value (file entries)
    action: Callable[[], object] | None = None  # the undo (action entries)


class SystemState:
    """A context that changes system settings and puts them back on every exit path.

    ``with SystemState() as st: st.set("/sys/kernel/mm/ksm/run", "1")`` records the file's
    value before the first change and restores it on exit, on an exception, at interpreter
    exit and on SIGTERM/SIGINT. Files whose value reads back as a ``[selected]`` menu (THP
    settings) are restored to the selected word. :meth:`on_restore` adds an action to the
    same stack (``st.on_restore("swapoff /dev/zram1", lambda: swapoff(...))``), so settings
    and actions come back strictly in reverse order of the changes.
    """

    def __init__(self) -> None:
        self._stack: list[_Undo] = []
        self._token: int | None = None

    @property
    def saved(self) -> list[tuple[str, str]]:
        """(path, original value) for every setting changed so far, oldest first."""
        return [(u.what, u.value) for u in self._stack if u.value is not None]

    @property
    def actions(self) -> list[str]:
        """What each recorded undo action does, oldest first."""
        return [u.what for u in self._stack if u.action is not None]

    def original(self, path: str) -> str | None:
        """The recorded original value of *path* (``None`` if it was never changed)."""
        for u in self._stack:
            if u.value is not None and u.what == path:
                return u.value
        return None

    def __enter__(self) -> SystemState:
        self._token = register_cleanup(self.restore)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def record(self, path: str, original: str | None = None) -> None:
        """Remember *path*'s current value (once) so that it is restored later."""
        if self.original(path) is not None:
            return
        value = _read(path) if original is None else original
        if "[" in value and "]" in value:  # "always [madvise] never" -> "madvise"
            value = value[value.index("[") + 1:value.index("]")]
        self._stack.append(_Undo(path, value=value))

    def on_restore(self, what: str, action: Callable[[], object]) -> None:
        """Run *action* when the state is restored, in reverse order with everything else
        (record it right after the change it undoes, inside :func:`deferred_signals`)."""
        self._stack.append(_Undo(what, action=action))

    def set(self, path: str, value: str) -> None:
        """Record *path*'s value, then write *value* to it."""
        self.record(path)
        _write(path, value)

    def restore(self) -> list[tuple[str, str]]:
        """Write every recorded value back and run every undo action, newest first; returns
        what could not be undone: (path, value) for files, (what, "") for actions."""
        failed: list[tuple[str, str]] = []
        with deferred_signals():  # a Ctrl-C now would only interrupt the undoing
            self._undo_all(failed)
        if self._token is not None:
            unregister_cleanup(self._token)
            self._token = None
        return failed

    def _undo_all(self, failed: list[tuple[str, str]]) -> None:
        while self._stack:
            u = self._stack.pop()
            try:
                if u.action is not None:
                    u.action()
                else:
                    assert u.value is not None
                    _write(u.what, u.value)
            except Exception as e:
                if u.action is not None:
                    print(f"anonex: could not undo {u.what}: {e}", file=sys.stderr)
                    failed.append((u.what, ""))
                else:
                    print(f"anonex: could not restore {u.what} to {u.value!r}: {e}",
                          file=sys.stderr)
                    failed.append((u.what, u.value or ""))
