"""A booted kernel as one more :class:`~anonex.observation.Backend`.

:class:`BootedKernel` boots its image once (:mod:`anonex.boot.vm`) and has the guest run
the live backend on every scenario it will be asked for (:mod:`anonex.boot.guest`), while
the host reads the guest's results as they arrive, one JSON line per scenario, from the
directory both share. Each scenario is then replayed on the host
(:class:`~anonex.boot.record.Replay`), so the runner, the model and the diff run here, at
the host's speed, and nothing above the backends knows a VM was involved.

Timeouts: the guest must say hello within :data:`BOOT_TIMEOUT` seconds of starting, and
each scenario must arrive within :data:`SCENARIO_TIMEOUT` seconds of the one before (both
scaled down under KVM). A guest that panics, hangs or dies is killed and reported for that
kernel (:class:`~anonex.live.LiveUnavailable` with the console's last lines); the caller
goes on with its other kernels.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from anonex.boot import bundle, vm
from anonex.boot.images import KernelImage
from anonex.boot.record import Event, GuestError, Replay
from anonex.live import LiveUnavailable, safety
from anonex.observation import PageObs, StepResult
from anonex.scenario.ast import Scenario, Step
from anonex.versions import KernelVersion

BOOT_TIMEOUT = float(os.environ.get("ANONEX_BOOT_TIMEOUT", "240"))
SCENARIO_TIMEOUT = float(os.environ.get("ANONEX_SCENARIO_TIMEOUT", "240"))
POLL = 0.05
SHUTDOWN_WAIT = 15.0  # a guest that has sent everything powers off by itself

#: environment variables the guest's anonex gets from ours
PASSED_ENV = ("ANONEX_PURE", "ANONEX_LIVE_LOCK_TIMEOUT", "ANONEX_DIO_DIR")
#: ANONEX_GUEST_PROFILE=FILE: the guest runs under cProfile; its stats end up in FILE
PROFILE = os.environ.get("ANONEX_GUEST_PROFILE")


class GuestFailed(RuntimeError):
    """The guest did not deliver (hung, panicked, exited early); the message says how."""


class GuestSession:
    """One boot of one image running a list of scenarios; their recordings as they come."""

    def __init__(self, image: KernelImage, scenarios: list[Scenario]) -> None:
        self.image = image
        self.scenarios = scenarios
        self.paths = [s.path for s in scenarios]
        # the directory the guest shares, made when it boots (an unused kernel leaves none)
        self.dir = Path(tempfile.gettempdir()) / "anonex-guest-unused"
        self.out = self.dir / "records.jsonl"
        self._token: int | None = None
        self.guest: vm.Guest | None = None
        self.hello: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.failed = ""
        self._lines: dict[str, list[dict[str, Any]]] = {}
        self._received = 0  # scenario lines read so far
        self._offset = 0
        self._buf = b""
        self._last = 0.0  # when the last line came
        self.boot_started = 0.0
        self.seconds_to_hello = 0.0
        self.last_seconds = 0.0  # how long the guest took for the last scenario handed out

    # -- running the guest -------------------------------------------------------------------

    def _command(self) -> str:
        lst = self.dir / "scenarios.pickle"
        lst.write_bytes(pickle.dumps(self.scenarios))
        py = bundle.build(bundle.cache_dir())
        argv, env = py.command("anonex.boot.guest", [str(self.out), str(lst)])
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        if PROFILE:
            env["ANONEX_GUEST_PROFILE"] = str(self.dir / "guest.prof")
        unpack = (f"mkdir -p {bundle.UNPACK} && tar xf {shlex.quote(str(py.tar))} "
                  f"-C {bundle.UNPACK}")
        # the kernel's command line carries the command (2 KiB at most, and an early
        # BUG on 6.12 when it is longer): a script in the shared directory carries the rest
        script = self.dir / "run.sh"
        script.write_text("#!/bin/sh\n" + unpack + " && " +
                          vm.shell_command(argv, env, os.getcwd()) + "\n")
        return f"sh {shlex.quote(str(script))}"

    def launch(self) -> None:
        """Boot the guest and let it run, without waiting for anything: it works through
        its scenarios while the host does something else (another kernel's results)."""
        if self.guest is not None or self.failed:
            return
        vm.check_tools()
        self.dir = Path(tempfile.mkdtemp(prefix="anonex-guest-"))
        self.out = self.dir / "records.jsonl"
        self._token = safety.register_cleanup(self.close)  # Ctrl-C, SIGTERM, exit
        self.boot_started = time.monotonic()
        self.guest = vm.boot(self.image.kimg, self._command(), self.dir)
        self._last = time.monotonic()

    def start(self) -> None:
        """Boot the guest if it is not running yet, and wait until anonex runs in it."""
        if self.hello is not None or self.failed:
            return
        self.launch()
        self._wait(lambda: self.hello is not None, BOOT_TIMEOUT, "to boot and start anonex")
        self.seconds_to_hello = time.monotonic() - self.boot_started
        assert self.hello is not None
        if "error" in self.hello:
            self._fail(f"anonex could not run in the guest: {self.hello['error']}")

    def _fail(self, why: str) -> None:
        self.failed = why
        kept = self._keep_console()
        self.close()
        raise GuestFailed(why + (f"\n(the whole console: {kept})" if kept else ""))

    def _keep_console(self) -> str:
        """Copy the failed guest's console where the user can read it after we clean up."""
        if self.guest is None or not self.guest.console.exists():
            return ""
        from anonex.boot.debian import folder_name

        dest = bundle.cache_dir() / f"console-{folder_name(self.image.label)}.log"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.guest.console, dest)
        except OSError:
            return ""
        return str(dest)

    def _read(self) -> None:
        """Take every complete line the guest has written since the last look."""
        try:
            with open(self.out, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            rec = json.loads(raw)
            self._last = time.monotonic()
            kind = rec.get("kind")
            if kind == "hello":
                self.hello = rec
            elif kind == "done":
                self.done = rec
            elif kind == "scenario":
                self._lines.setdefault(str(rec["path"]), []).append(rec)
                self._received += 1

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        while True:
            self._read()
            if ready():
                return
            g = self.guest
            assert g is not None
            if not g.alive():
                self._read()
                if ready():
                    return
                self._fail(f"the guest stopped before it finished {what}"
                           f"{_panic(g.console_tail())}")
            panic = g.panicked()
            if panic:
                self._fail(f"the guest kernel died while waiting {what}: {panic}"
                           f"{_panic(g.console_tail())}")
            if time.monotonic() - self._last > timeout:
                self._fail(f"the guest hung: nothing came for {timeout:g} s while waiting "
                           f"{what}{_panic(g.console_tail())}")
            time.sleep(POLL)

    def record(self, path: str) -> list[Event]:
        """The recording of *path*'s run (waits until the guest has sent it)."""
        if self.failed:
            raise GuestFailed(self.failed)
        if self.hello is None:
            self.start()
        self._wait(lambda: bool(self._lines.get(path)),
                   SCENARIO_TIMEOUT, f"for {Path(path).name}")
        rec = self._lines[path].pop(0)
        self.last_seconds = float(rec.get("seconds", 0.0))
        if "error" in rec:
            raise GuestError(f"{Path(path).name} in the guest: {rec['error']}")
        events: list[Event] = rec["events"]
        return events

    def close(self) -> None:
        """Let a guest that delivered everything power off by itself (a few seconds),
        then make sure nothing of it is left running."""
        g = self.guest
        if g is not None:
            if not self.failed and self._delivered():
                deadline = time.monotonic() + SHUTDOWN_WAIT
                while g.alive() and time.monotonic() < deadline:
                    time.sleep(POLL)
            g.kill()
        if PROFILE and (self.dir / "guest.prof").exists():
            shutil.copy(self.dir / "guest.prof", PROFILE)
        if self._token is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            safety.unregister_cleanup(self._token)
            self._token = None

    def _delivered(self) -> bool:
        self._read()
        return self.done is not None or self._received >= len(self.paths)

    @property
    def accel(self) -> str:
        return self.guest.accel if self.guest is not None else "?"


def _early_crash(message: str) -> bool:
    """Whether a guest that never started anonex crashed while booting (an Oops or a
    panic on its console), rather than failing the same way on every boot."""
    return "Kernel panic" in message or "Oops:" in message


def _panic(tail: str) -> str:
    return f"; the console ended with:\n{tail}" if tail else ""


class BootedKernel:
    """The Backend protocol on a kernel image booted in a VM: one boot for all the scenarios
    given at construction (one more scenario than that is an error)."""

    def __init__(self, image: KernelImage, scenarios: list[Scenario],
                 name: str | None = None) -> None:
        self.image = image
        self.name = name or image.label
        self.scenarios = scenarios
        self.session = GuestSession(image, scenarios)
        self._replay: Replay | None = None
        self.retried = ""  # why the first boot was given up, if it was

    def launch(self) -> None:
        """Boot now and let the guest run ahead (see :meth:`GuestSession.launch`)."""
        try:
            self.session.launch()
        except (vm.BootError, OSError) as e:  # said, as LiveUnavailable, when it is used
            self.session.failed = f"{type(e).__name__}: {e}"

    def _booted(self) -> Replay:
        if self._replay is None:
            try:
                try:
                    self.session.start()
                except GuestFailed as e:
                    if self.session.hello is not None or not _early_crash(str(e)):
                        raise
                    # a crash while booting, before anonex ran (seen under TCG: an int3
                    # Oops in 6.12's text patching): one more boot
                    self.retried = str(e).splitlines()[0]
                    self.session = GuestSession(self.image, self.scenarios)
                    self.session.start()
            except (GuestFailed, vm.BootError, OSError) as e:
                raise LiveUnavailable(f"{self.name}: {e}") from None
            if self.session.failed:
                raise LiveUnavailable(f"{self.name}: {self.session.failed}")
            hello = self.session.hello or {}
            self._replay = Replay(self.name, KernelVersion.parse(str(hello["version"])),
                                  self._source)
        return self._replay

    def _source(self, scenario: Scenario) -> list[Event]:
        try:
            return self.session.record(scenario.path)
        except GuestFailed as e:
            raise LiveUnavailable(f"{self.name}: {e}") from None

    @property
    def version(self) -> KernelVersion:
        """The guest kernel's upstream version (boots the guest on first use)."""
        return self._booted().version

    @version.setter
    def version(self, v: KernelVersion) -> None:  # the protocol's attribute; fixed here
        raise AttributeError("a booted kernel's version is what the guest says")

    def start(self, scenario: Scenario) -> None:
        self._booted().start(scenario)

    def step(self, step: Step) -> StepResult:
        return self._booted().step(step)

    def observe(self) -> list[PageObs]:
        return self._booted().observe()

    def finish(self) -> None:
        if self._replay is not None:
            self._replay.finish()

    def environment(self) -> dict[str, Any]:
        env = self._booted().environment()
        return {**env, **self.boot_facts(), "guest_seconds": self.session.last_seconds}

    def boot_facts(self) -> dict[str, Any]:
        """How this kernel was booted (image, accelerator and why, times)."""
        hello = self.session.hello or {}
        _, why = vm.accel_choice()
        return {"image": str(self.image.kimg), "label": self.image.label,
                "release": hello.get("release", self.image.release),
                "uname_v": hello.get("uname_v"),
                "accel": self.session.accel, "accel_why": why,
                # the guest's uptime when anonex answered: the boot, the unpacking of its
                # Python and its start (the host may have looked later: see launch())
                "boot_seconds": hello.get("boot_seconds") or
                round(self.session.seconds_to_hello, 1),
                "run_seconds": (self.session.done or {}).get("seconds")}

    def close(self) -> None:
        """Stop the guest (if it still runs) and remove what the boot left."""
        self.session.close()

    def __enter__(self) -> BootedKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_env(name: str, version: KernelVersion, env: dict[str, Any]) -> str:
    """One line on a booted kernel for the output's header, from a run's environment."""
    acc = str(env.get("accel", "?")).upper()
    if env.get("accel") == "tcg" and env.get("accel_why"):
        acc += f" (no KVM: {env['accel_why']})"
    run = env.get("run_seconds")
    return (f"{name}: Linux {version} ({env.get('release')}) booted in a VM · {acc} · "
            f"boot {env.get('boot_seconds', 0):.0f} s" +
            (f" · guest run {run:.0f} s" if run else ""))
