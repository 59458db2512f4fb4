"""The kernels ``anonex fuzz`` runs walks on: one batch of scenarios at a time.

A :class:`FuzzKernel` runs a list of scenarios and yields, in order, each one's trace (or,
for a scenario its backend failed on, why). :class:`BackendKernel` runs them one by one
on any :class:`~anonex.observation.Backend`: the running kernel's live backend, or in the
tests the model at another version standing in for a kernel. :class:`BootKernel` boots
its image once per batch (:class:`~anonex.boot.backend.BootedKernel` takes the whole
list), so shrinking costs one boot a round. A kernel that cannot run at all raises
:class:`~anonex.live.LiveUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from anonex.live import LiveUnavailable
from anonex.observation import Backend
from anonex.runner import Trace, run
from anonex.scenario.ast import Scenario
from anonex.versions import KernelVersion

if TYPE_CHECKING:
    from anonex.boot.images import KernelImage

#: shrinking rounds on a booted kernel at most (each is one boot)
BOOT_ROUNDS = 6


class FuzzKernel(Protocol):
    """A kernel the walks run on."""

    name: str
    #: shrinking rounds at most (None: until every reproducer is 1-minimal)
    max_rounds: int | None
    booted: bool  # every batch boots a VM
    boots: int  # VMs booted so far
    env: dict[str, Any]  # the environment of its first run (for the report's header)

    @property
    def version(self) -> KernelVersion:
        """The version walks are generated at and the model runs at. A booted kernel's is
        what its image says until it has run, then what the guest says."""

    def run(self, scens: list[Scenario]) -> Generator[Trace | str, None, None]:
        """Each scenario's trace, in order, or why the backend failed on it; raises
        :class:`~anonex.live.LiveUnavailable` when the kernel cannot run any more."""

    def close(self) -> None:
        """Release the kernel (idempotent)."""


def _run_one(scen: Scenario, be: Backend) -> Trace | str:
    """*scen* on *be*; a backend failing on this scenario (not the kernel going away) is
    reported as text, so one odd walk does not end the fuzzing."""
    try:
        return run(scen, be)
    except LiveUnavailable:
        raise
    except Exception as e:
        return f"{type(e).__name__}: {e}"


class BackendKernel:
    """A kernel whose backend runs scenarios one by one: the running kernel (its live
    backend, kept set up from one scenario to the next), or a stand-in.

    *version* is the version the model is compared at (default: the backend's); a model
    backend at another version makes a kernel that diverges, for tests."""

    booted = False

    def __init__(self, name: str, backend: Backend, version: KernelVersion | None = None,
                 max_rounds: int | None = None,
                 close: Callable[[], object] | None = None) -> None:
        self.name = name
        self.backend = backend
        self._version = version or backend.version
        self.max_rounds = max_rounds
        self.boots = 0
        self.env: dict[str, Any] = {}
        self._close = close

    @property
    def version(self) -> KernelVersion:
        return self._version

    def run(self, scens: list[Scenario]) -> Generator[Trace | str, None, None]:
        for s in scens:
            t = _run_one(s, self.backend)
            if not self.env and isinstance(t, Trace):
                self.env = dict(t.env)
            yield t

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


def live_kernel() -> BackendKernel:
    """The running kernel (check :func:`anonex.live.available` first)."""
    from anonex.live.backend import LiveBackend

    be = LiveBackend(keep=True)
    return BackendKernel("live", be, close=be.close)


class BootKernel:
    """A kernel image booted in a VM: one boot for each batch of scenarios."""

    booted = True

    def __init__(self, image: KernelImage, name: str | None = None,
                 max_rounds: int | None = BOOT_ROUNDS) -> None:
        self.image = image
        self.name = name or image.label
        self.max_rounds = max_rounds
        self.boots = 0
        self.env: dict[str, Any] = {}
        self._version: KernelVersion | None = None

    @property
    def version(self) -> KernelVersion:
        if self._version is not None:
            return self._version
        return KernelVersion.parse(self.image.upstream or self.image.release)

    def run(self, scens: list[Scenario]) -> Generator[Trace | str, None, None]:
        if not scens:
            return
        from anonex.boot.backend import BootedKernel

        bk = BootedKernel(self.image, scens, name=self.name)
        try:
            self.boots += 1
            for s in scens:
                t = _run_one(s, bk)
                if isinstance(t, Trace):
                    self._version = t.version
                    if not self.env:
                        self.env = dict(t.env)
                yield t
            self.env.update(bk.boot_facts())
        finally:
            bk.close()

    def close(self) -> None:
        pass  # each batch's guest is stopped when the batch ends
