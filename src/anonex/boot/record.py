"""A backend's answers as data: record them where a kernel runs, replay them elsewhere.

A booted kernel runs the live backend inside its guest, one process for all scenarios, and
the model and the diff run on the host. Between the two travels what the backend answered,
call by call: the guest wraps its :class:`~anonex.live.backend.LiveBackend` in a
:class:`Recorder`, the host hands the recording to a :class:`Replay`, which is a
:class:`~anonex.observation.Backend` like any other. The runner on the host therefore
makes the same calls the runner in the guest made (the runner is deterministic given the
backend's answers) and judges the run itself: verdicts, page labels and expectations come
from one place, whichever kernel ran the steps.

A recording is a list of events, one per call: ``start``, ``env``, ``step``, ``observe``,
``finish``, each with what the call returned or the exception it raised
(``LiveUnavailable`` and ``Unsupported`` keep their type; anything else is an error of the
guest). A replay that is asked for a call the recording does not hold next raises
:class:`ReplayError`: the two runners went different ways, a bug of anonex.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from anonex.findings import Finding
from anonex.live import LiveUnavailable
from anonex.observation import Backend, PageObs, StepResult, Unsupported
from anonex.scenario.ast import Scenario, Step
from anonex.versions import KernelVersion

Event = dict[str, Any]


class ReplayError(RuntimeError):
    """The replayed runner asked for something the recording does not hold next."""


class GuestError(RuntimeError):
    """The backend in the guest raised an unexpected exception (its text is the message)."""


#: an observation travels as a list of these fields' values (a THP scenario observes tens of
#: thousands of pages: a dict per page cost the emulated guest seconds); the label ``page``
#: stays out: the host's runner gives it from the raw identity
OBS_FIELDS = tuple(f.name for f in dataclasses.fields(PageObs) if f.name != "page")


def obs_to_json(o: PageObs) -> list[Any]:
    """Everything of an observation, the raw page identity included, as a list."""
    return [getattr(o, f) for f in OBS_FIELDS]


def obs_from_json(values: list[Any]) -> PageObs:
    return PageObs(**dict(zip(OBS_FIELDS, values, strict=True)))


def result_to_json(r: StepResult) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(r).items() if v is not None and v != ()}


def result_from_json(d: dict[str, Any]) -> StepResult:
    fields = dict(d)
    findings = tuple(Finding(**f) for f in fields.pop("findings", ()))
    return StepResult(**fields, findings=findings)


def _raised(e: BaseException) -> Event:
    kind = type(e).__name__ if isinstance(e, LiveUnavailable | Unsupported) else "error"
    return {"raise": kind, "msg": str(e) or type(e).__name__}


def _reraise(ev: Event) -> None:
    kind, msg = ev["raise"], str(ev["msg"])
    if kind == "LiveUnavailable":
        raise LiveUnavailable(msg)
    if kind == "Unsupported":
        raise Unsupported(msg)
    raise GuestError(msg)


class Recorder:
    """Wraps a backend and records every answer it gives (in the guest)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.events: list[Event] = []

    def _call(self, call: str, fn: Any, *args: Any) -> Any:
        try:
            out = fn(*args)
        except Exception as e:
            self.events.append({"call": call, **_raised(e)})
            raise
        return out

    def start(self, scenario: Scenario) -> None:
        self.events = []
        self._call("start", self.inner.start, scenario)
        self.events.append({"call": "start"})

    def step(self, step: Step) -> StepResult:
        res: StepResult = self._call("step", self.inner.step, step)
        self.events.append({"call": "step", "line": step.pos.line,
                            "result": result_to_json(res)})
        return res

    def observe(self) -> list[PageObs]:
        obs: list[PageObs] = self._call("observe", self.inner.observe)
        self.events.append({"call": "observe", "obs": [obs_to_json(o) for o in obs]})
        return obs

    def finish(self) -> None:
        self._call("finish", self.inner.finish)
        self.events.append({"call": "finish"})

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = self._call("env", self.inner.environment)
        self.events.append({"call": "env", "env": env})
        return env


class Replay:
    """A backend that gives the answers a recording holds, in order (on the host).

    ``source(scenario)`` returns the recording of that scenario's run (for a booted kernel:
    waiting until the guest has sent it); ``version`` is the recorded kernel's version."""

    def __init__(self, name: str, version: KernelVersion,
                 source: Any) -> None:
        self.name = name
        self.version = version
        self._source = source
        self._events: list[Event] = []
        self._pos = 0

    def _next(self, call: str) -> Event:
        if self._pos >= len(self._events):
            raise ReplayError(f"{self.name}: the recording ends before {call}()")
        ev = self._events[self._pos]
        if ev.get("call") != call:
            raise ReplayError(f"{self.name}: {call}() asked, the recording has "
                              f"{ev.get('call')}() next")
        self._pos += 1
        if "raise" in ev:
            _reraise(ev)
        return ev

    def start(self, scenario: Scenario) -> None:
        self._events = list(self._source(scenario))
        self._pos = 0
        self._next("start")

    def step(self, step: Step) -> StepResult:
        ev = self._next("step")
        if ev.get("line") != step.pos.line:
            raise ReplayError(f"{self.name}: step of line {step.pos.line} asked, the "
                              f"recording has line {ev.get('line')}")
        return result_from_json(ev["result"])

    def observe(self) -> list[PageObs]:
        return [obs_from_json(d) for d in self._next("observe")["obs"]]

    def finish(self) -> None:
        if self._pos < len(self._events) and self._events[self._pos].get("call") == "finish":
            self._next("finish")

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = self._next("env")["env"]
        return env
