"""The driver <-> actor transport: a FIFO pair per actor, JSON lines, strict lock-step.

The driver makes both FIFOs (``<name>.cmd``, ``<name>.reply``) in a private directory
before the actor exists. Open order: the driver opens the reply end (read, non-blocking)
then the command end (write, retried non-blocking until the actor has it open); the actor
opens the command end (read) then the reply end (write). FIFOs rather than inherited pipes
because an actor forked by another actor must not share its parent's channel.

Failure modes: :class:`ChannelClosed` when the other side is gone (EOF, EPIPE) and
:class:`ChannelTimeout` when no reply comes in time; both are :class:`ChannelError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import time
from typing import Any


class ChannelError(Exception):
    """The actor behind a channel cannot be talked to."""


class ChannelClosed(ChannelError):
    """The other end closed (the process died or exited)."""


class ChannelTimeout(ChannelError):
    """No reply within the timeout."""


def make_fifos(directory: str, name: str) -> tuple[str, str]:
    """Create the command and reply FIFOs of actor *name*; return their paths."""
    cmd = os.path.join(directory, f"{name}.cmd")
    rep = os.path.join(directory, f"{name}.reply")
    os.mkfifo(cmd, 0o600)
    os.mkfifo(rep, 0o600)
    return cmd, rep


class DriverEnd:
    """The driver's side of one actor's channel."""

    def __init__(self, cmd_path: str, reply_path: str, timeout: float) -> None:
        self.timeout = timeout
        self._buf = b""
        self.rfd = os.open(reply_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.wfd = -1
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wfd = os.open(cmd_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:
                    self.close()
                    raise
            if time.monotonic() > deadline:
                self.close()
                raise ChannelTimeout(f"actor never opened {cmd_path}")
            time.sleep(0.0005)
        os.set_blocking(self.wfd, True)

    def call(self, msg: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one command and wait for its one reply."""
        data = (json.dumps(msg) + "\n").encode()
        try:
            os.write(self.wfd, data)
        except (BrokenPipeError, OSError) as e:
            raise ChannelClosed(f"cannot send: {e}") from None
        return self._recv(self.timeout if timeout is None else timeout)

    def _recv(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout(f"no reply within {timeout:.1f} s")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.rfd, 65536)
            except BlockingIOError:
                continue  # select() can report a FIFO readable spuriously
            if not chunk:
                raise ChannelClosed("the actor closed its reply channel")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.rfd = self.wfd = -1


class ActorEnd:
    """The actor's side: blocking reads of commands, one reply per command."""

    def __init__(self, cmd_path: str, reply_path: str) -> None:
        self.rfd = os.open(cmd_path, os.O_RDONLY)
        self.wfd = os.open(reply_path, os.O_WRONLY)
        self._buf = b""

    def recv(self) -> dict[str, Any] | None:
        """The next command, or ``None`` when the driver has gone."""
        while b"\n" not in self._buf:
            try:
                chunk = os.read(self.rfd, 65536)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        msg: dict[str, Any] = json.loads(line)
        return msg

    def send(self, reply: dict[str, Any]) -> None:
        data = (json.dumps(reply) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
