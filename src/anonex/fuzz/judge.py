"""Run a batch of scenarios on a kernel and on the model, and judge each pair.

The model goes first, cheaply (no observations: walks have no expectations), to drop the
scenarios it refuses (a step it faults on, or a broken invariant): those are never sent
to the kernel. The kernel's traces then arrive one by one; each is diffed with the
model's full run at once and dropped, so a batch of THP walks never holds more than one
pair of traces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Literal

from anonex.diff import Divergence, diff
from anonex.fuzz.kernels import FuzzKernel
from anonex.harness.model import ModelBackend
from anonex.runner import Trace, run
from anonex.scenario.ast import Scenario

Status = Literal["agree", "diverge", "skip", "refused"]


@dataclass(slots=True)
class Outcome:
    """One scenario on one kernel and on the model: ``agree``, ``diverge`` (with the
    divergences), ``skip`` (the kernel could not take a step, or its backend failed: the
    reason says which) or ``refused`` (by the model; not run on the kernel)."""

    status: Status
    reason: str = ""
    divergences: list[Divergence] = field(default_factory=list)


def model_refusal(scen: Scenario, model: ModelBackend) -> str:
    """Why the model does not take *scen* to its end cleanly ("" when it does)."""
    try:
        t = run(scen, model, full=False)
    except Exception as e:  # a candidate the shrinker made may confuse it
        return f"the model failed: {type(e).__name__}: {e}"
    return "" if t.verdict == "pass" else f"the model refuses: {t.reason}"


def _judge(scen: Scenario, model: ModelBackend, kt: Trace | str) -> Outcome:
    if isinstance(kt, str):
        return Outcome("skip", f"the kernel's backend failed: {kt}")
    if kt.verdict == "skip":
        return Outcome("skip", kt.skip_reason or kt.reason)
    divs = diff(run(scen, model), kt)
    return Outcome("diverge" if divs else "agree", divergences=divs)


def evaluate(kernel: FuzzKernel, model: ModelBackend, scens: Sequence[Scenario],
             advance: Callable[[], object] = lambda: None) -> list[Outcome]:
    """Each scenario's :class:`Outcome`, in order (*advance* after each). Raises
    :class:`~anonex.live.LiveUnavailable` when the kernel cannot run."""
    outs: list[Outcome | None] = []
    for s in scens:
        why = model_refusal(s, model)
        outs.append(Outcome("refused", why) if why else None)
        if why:
            advance()
    todo = [i for i, o in enumerate(outs) if o is None]
    with closing(kernel.run([scens[i] for i in todo])) as traces:
        for i, kt in zip(todo, traces, strict=True):
            outs[i] = _judge(scens[i], model, kt)
            advance()
    return [o for o in outs if o is not None]


_LABELLED = re.compile(r"@\S+ (faults|outcome)")


def field_of(d: Divergence) -> str:
    """What a divergence is about: a page field (``anon_exclusive``, ``page``, ``state``,
    ``mapped by a PMD``…), ``value read``, ``faults``, ``outcome`` or ``step error``."""
    if d.field is not None:
        return d.field
    m = _LABELLED.fullmatch(d.what)
    return m.group(1) if m else d.what


def signature(divs: Sequence[Divergence]) -> frozenset[str]:
    """The fields the first diverging step diverges on (empty without divergences)."""
    if not divs:
        return frozenset()
    first = divs[0].line
    return frozenset(field_of(d) for d in divs if d.line == first)
