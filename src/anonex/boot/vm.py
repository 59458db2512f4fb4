"""Booting a kernel image in a virtual machine with virtme-ng, and watching it.

virtme-ng (``vng``) boots the image with this machine's root filesystem shared read-only
into the guest, so the same interpreter and the same anonex run inside; one directory of
ours is shared read-write (``--rwdir``) and carries the guest's results back. We never
write an initramfs or a QEMU command line of our own.

**KVM or TCG.** KVM is tried where ``/dev/kvm`` can be opened; a guest that has not
printed the kernel's banner within :data:`KVM_PROBE_SECONDS`, or whose QEMU gave up
(nested virtualisation: QEMU cannot set an MSR, or the guest hangs right after the
decompressor), is killed and the kernel boots again under TCG (software emulation). The
answer is kept for the rest of the process and said in the output. ``ANONEX_ACCEL=kvm``
or ``tcg`` decides it instead.

**Nothing left running.** ``vng`` and its QEMU run in a process group of their own, which
:meth:`Guest.kill` ends (``SIGKILL`` to that group only: nothing we did not start); the
kill is registered with :mod:`anonex.live.safety`, so it runs on exit, Ctrl-C and SIGTERM.

How it fails: :class:`BootError` with what is missing (QEMU, busybox, virtme-ng) and the
package that brings it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from anonex.live import safety

KVM_PROBE_SECONDS = 25.0  # vng prepares for ~6 s; a KVM guest prints its banner at once
MEMORY = "3G"
PANIC_MARKS = ("Kernel panic", "PANIC: early exception", "kernel BUG at")
CPUS = 2


class BootError(RuntimeError):
    """The machine cannot boot a kernel image; the message says what to install."""


def vng_command() -> list[str]:
    """How to run virtme-ng (the ``vng`` beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "vng"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("vng")
    if found:
        return [found]
    raise BootError("virtme-ng is not installed (pip install virtme-ng; it is a dependency "
                    "of anonex, so pip install -e . brings it)")


def check_tools() -> None:
    """QEMU and a static busybox (virtme-ng's initramfs) must be there."""
    missing = []
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86_64 (Debian: apt-get install qemu-system-x86)")
    if not any(shutil.which(b) for b in ("busybox",)):
        missing.append("busybox (Debian: apt-get install busybox-static)")
    if shutil.which("depmod") is None and shutil.which("/usr/sbin/depmod") is None:
        missing.append("depmod (Debian: apt-get install kmod)")
    if missing:
        raise BootError("cannot boot kernels here: missing " + "; ".join(missing))
    vng_command()


_accel: str | None = None  # decided once per process
_accel_why = ""


def kvm_usable() -> tuple[bool, str]:
    """Whether KVM may be tried at all (``/dev/kvm`` opens read-write)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return True, ""


def accel_choice() -> tuple[str | None, str]:
    """``("kvm"|"tcg", why)`` once decided (or forced by ANONEX_ACCEL), else ``(None, "")``:
    try KVM first."""
    forced = os.environ.get("ANONEX_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return forced, "ANONEX_ACCEL"
    if _accel is not None:
        return _accel, _accel_why
    ok, why = kvm_usable()
    if not ok:
        return "tcg", why
    return None, ""


def decided(accel: str, why: str) -> None:
    """Remember what worked (or why KVM did not) for the rest of this process."""
    global _accel, _accel_why
    _accel, _accel_why = accel, why


class Guest:
    """One running ``vng`` (and its QEMU): the kernel image, the command it runs, the
    console log, the shared directory."""

    def __init__(self, kimg: Path, command: str, rwdir: Path, console: Path, *,
                 accel: str, append: list[str] | None = None) -> None:
        self.accel = accel
        self.console = console
        self._panic_checked = 0.0
        self.started = time.monotonic()
        args = [*vng_command(), "--run", str(kimg), "--user", "root", "--verbose",
                "--memory", MEMORY, "--cpus", str(CPUS), "--rwdir", str(rwdir),
                "--force-9p",
                # the guest's memory stays out of the host's KSM: a live run on the host
                # runs ksmd, and merged guest pages would keep its settings busy
                "--qemu-opts=-machine mem-merge=off"]
        if accel == "tcg":
            args.append("--disable-kvm")
        for a in append or []:
            args += ["--append", a]
        args += ["--", command]
        self.argv = args
        self._log = open(console, "wb")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=str(rwdir))
        self._token = safety.register_cleanup(self.kill)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def console_text(self) -> str:
        try:
            return self.console.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 12) -> str:
        """The last lines of the console that say something (QEMU's and the kernel's)."""
        text = self.console_text().replace("\r", "\n")
        keep = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return "\n".join(keep[-lines:])

    def panicked(self) -> str:
        """The line where the guest kernel panicked or hit a BUG ("" while it has not).
        Read at most once a second: the console grows with the whole boot log."""
        now = time.monotonic()
        if now - self._panic_checked < 1.0:
            return ""
        self._panic_checked = now
        for line in self.console_text().replace("\r", "\n").splitlines():
            if any(m in line for m in PANIC_MARKS):
                return line.strip()
        return ""

    def banner_seen(self) -> bool:
        return "Linux version" in self.console_text()

    def kill(self) -> None:
        """End vng and its QEMU (their process group, nothing else). Idempotent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        # anything left in the group (QEMU forked by vng) goes too, and is waited for
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)
        if not self._log.closed:
            self._log.close()
        safety.unregister_cleanup(self._token)


def boot(kimg: Path, command: str, rwdir: Path, *, append: list[str] | None = None) -> Guest:
    """Start *command* in a guest running *kimg*: under KVM if it works here (decided by
    trying once per process), else under TCG."""
    choice, _why = accel_choice()
    if choice is not None:
        return Guest(kimg, command, rwdir, rwdir / f"console-{choice}.log", accel=choice,
                     append=append)
    g = Guest(kimg, command, rwdir, rwdir / "console-kvm.log", accel="kvm", append=append)
    deadline = time.monotonic() + KVM_PROBE_SECONDS
    while time.monotonic() < deadline:
        if g.banner_seen():
            decided("kvm", "")
            return g
        if not g.alive():
            break
        time.sleep(0.1)
    why = (f"QEMU gave up under KVM{_qemu_error(g.console_text())}" if not g.alive() else
           f"a KVM guest printed nothing in {KVM_PROBE_SECONDS:g} s")
    g.kill()
    decided("tcg", why)
    return Guest(kimg, command, rwdir, rwdir / "console-tcg.log", accel="tcg", append=append)


def _qemu_error(console: str) -> str:
    """``: what QEMU said`` (its first error line, shortened), or ""."""
    for line in console.replace("\r", "\n").splitlines():
        if "qemu-system" in line and "error" in line:
            return ": " + line.split("error:", 1)[-1].strip()[:80]
    return ""


def shell_command(argv: list[str], env: dict[str, str], cwd: str) -> str:
    """One shell line for the guest: ``cd CWD && exec env K=V … ARGV``."""
    pairs = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return f"cd {shlex.quote(cwd)} && exec env {' '.join(pairs)} " + \
        " ".join(shlex.quote(a) for a in argv)
