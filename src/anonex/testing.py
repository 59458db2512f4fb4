"""Fuzzing the model with hypothesis, over the explorer's actions and properties.

:class:`MMStateMachine` is a hypothesis ``RuleBasedStateMachine``: each step draws one of
the actions the explorer would try in the current state (a write, a fork, a pin, …), runs
it on the model, and checks the always properties after it. Hypothesis shrinks a failure
to a short sequence; the failure carries that sequence as a ``.cow`` scenario
(:attr:`PropertyFailure.scenario`) that ``anonex run`` replays to the same violation.

Use it from your own tests by choosing a kernel and a bound::

    from anonex.testing import machine

    TestOld = machine("5.7", kinds=("anon",)).TestCase      # finds the CVE-2020-29374 leak

    class MyMachine(MMStateMachine):                       # or subclass and set fields
        kernel = "6.18"
        bounds = Bounds(procs=3, kinds=("anon", "thp"), ops=("write", "fork", "pin"))
    TestMine = MyMachine.TestCase

``known`` (default False) lets violations pass that the scenario library marks as
expected failures on that kernel (``xfail``). Set ``cow_dir`` (or the environment
variable ``ANONEX_COW_DIR``) to also write each failure's scenario to a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from anonex.explore import cex, properties
from anonex.explore.search import Violation
from anonex.explore.space import Action, Bounds
from anonex.explore.world import Space, World
from anonex.versions import CURRENT, KernelVersion


class PropertyFailure(AssertionError):
    """An always property broke. :attr:`scenario` is the failing steps, minimised, as a
    ``.cow`` text that ``anonex run`` replays to the same violation."""

    def __init__(self, prop: str, message: str, space: Space,
                 path: tuple[Action, ...]) -> None:
        super().__init__(prop, message)
        self.prop = prop
        self.message = message
        self.space = space
        self.path = path
        self._scenario: str | None = None

    @property
    def scenario(self) -> str:
        if self._scenario is None:
            path = cex.minimize(self.space, self.path, self.prop)
            v = Violation(self.prop, self.message, path)
            how = f"by hypothesis, shrunk and minimised to {len(path)} steps,"
            self._scenario = cex.scenario_text(self.space, v, origin=how)[0]
        return self._scenario

    def __str__(self) -> str:
        return (f"{self.prop}: {self.message}\n\n--- the failing steps as a scenario "
                f"(anonex run FILE --kernel {self.space.version}) ---\n{self.scenario}")


class MMStateMachine(RuleBasedStateMachine):
    """The model at :attr:`kernel`, driven by the explorer's actions within :attr:`bounds`
    (its ``depth`` is not used: hypothesis decides how long a run is), checking
    :attr:`check` (None: every always property) after every step."""

    kernel: ClassVar[str] = str(CURRENT)
    bounds: ClassVar[Bounds] = Bounds()
    check: ClassVar[tuple[str, ...] | None] = None
    known: ClassVar[bool] = False
    cow_dir: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.space = Space(self.bounds, KernelVersion.parse(self.kernel))
        self.world: World = self.space.initial()
        self.path: list[Action] = []
        self._pending: list[properties.Finding] = []
        names = self.check or properties.ALWAYS_NAMES
        self._props = frozenset((*names, properties.MODEL_ERROR))  # a bug of anonex: always

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """Take one of the actions enabled here (the model may refuse it: then nothing
        happens)."""
        acts = self.space.actions(self.world)
        if not acts:
            return
        a = data.draw(st.sampled_from(acts), label="action")
        o = self.space.step(self.world, a)
        if o is None:
            return
        self.path.append(a)
        self._pending = [f for f in o.findings if f.property in self._props]
        if o.crashed:  # a kernel BUG: the state is half-updated, do not go on from it
            self._fail(self._pending)
            self.path.pop()
            return
        self.world = o.world
        self._pending += [f for f in self.space.check(self.world, o.checked)
                          if f.property in self._props]

    @invariant()
    def always(self) -> None:
        """The always properties hold in this state."""
        if self._pending:
            self._fail(self._pending)

    def to_cow(self, prop: str, message: str = "") -> str:
        """The steps so far as a scenario that breaks *prop*."""
        text, _, _ = cex.scenario_text(self.space, Violation(prop, message, tuple(self.path)))
        return text

    def _fail(self, findings: list[properties.Finding]) -> None:
        path = tuple(self.path)
        for f in findings:
            prop, msg = f.property, f.message
            if self.known:
                v = Violation(prop, msg, path)
                kind = cex.scenario_text(self.space, v)[2]
                if cex.known_behaviour(self.space.version, v, kind):
                    continue
            failure = PropertyFailure(prop, msg, self.space, path)
            out = self.cow_dir or os.environ.get("ANONEX_COW_DIR")
            if out:
                d = Path(out)
                d.mkdir(parents=True, exist_ok=True)
                (d / f"hypothesis-{self.space.version}-{prop}.cow").write_text(
                    failure.scenario)
            raise failure
        self._pending = []


def machine(kernel: str = str(CURRENT), check: tuple[str, ...] | None = None,
            known: bool = False, **bounds: Any) -> type[MMStateMachine]:
    """A :class:`MMStateMachine` subclass for *kernel* and the given bound (the
    :class:`~anonex.explore.space.Bounds` fields: ``procs``, ``pages``, ``kinds``, ``ops``,
    ``tags``, ``handles``)."""
    b = Bounds(**bounds)
    name = f"MMStateMachine_{kernel.replace('.', '_')}"
    return type(name, (MMStateMachine,), {"kernel": kernel, "bounds": b, "check": check,
                                          "known": known})


__all__ = ["MMStateMachine", "PropertyFailure", "machine"]
