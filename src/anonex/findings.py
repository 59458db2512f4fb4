"""Findings as data: what broke, as a property name, never as a message to parse.

A :class:`Finding` is one broken promise: the :class:`Property` it breaks (by name), a
message for people, and where it was seen (the scenario line of the step, the page).
Every check builds its findings with the property's name where it detects the violation;
the runner, the reports and the explorer read :attr:`Finding.property`, and the message
only to print it. Rewording a message moves nothing.

:data:`PROPERTIES` is the registry, one definition per property: the kernel's promises
(DESIGN §3, kind ``always``), ``no-kernel-bug`` for the ``BUG_ON``/``VM_BUG_ON``/``VM_WARN``
the model reaches where the kernel would (kind ``kernel-bug``), and ``model-error``: a
Python exception inside the model, a bug of anonex, never a finding about the kernel.

This module imports nothing of anonex: the kernel model, the scenario runner, the reports
and the explorer all build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["always", "kernel-bug", "model-error"]


@dataclass(frozen=True, slots=True)
class Property:
    """A promise the model checks: its name (as the explorer's ``-p`` and ``expect bug``
    take it), the promise in one line, and its kind."""

    name: str
    promise: str
    kind: Kind = "always"


_ALL: tuple[Property, ...] = (
    Property("no-kernel-bug", "the model never reaches a kernel BUG_ON/VM_BUG_ON",
             "kernel-bug"),
    Property("no-leak", "a pipe shows only what its page's owner had there"),
    Property("isolation", "every process reads what it wrote or inherited"),
    Property("pin-coherence", "a pinned page stays the page its owner maps, with its data"),
    Property("writable-exclusive",
             "a writable private anon page is PG_anon_exclusive (5.19+)"),
    Property("pinned-exclusive", "a pinned anon page is PG_anon_exclusive (5.19+)"),
    Property("swap-sanity", "no swap entry leads to an exclusive swap-cache page"),
    Property("free-sanity", "a freed page carries no PG_anon_exclusive"),
    Property("ksm-not-exclusive", "a KSM page is never PG_anon_exclusive"),
    Property("accounting", "refcounts and mapcounts match page tables, pipes, pins, swap"),
    Property("model-error", "the model itself never fails (an exception in it is a bug of "
             "anonex, not of the kernel)", "model-error"),
)

PROPERTIES: dict[str, Property] = {p.name: p for p in _ALL}
"""Every property, by name, in the order the explorer reports them."""

# the names the checks use (a typo here is an import error, not a silent new property)
KERNEL_BUG = "no-kernel-bug"
MODEL_ERROR = "model-error"
NO_LEAK = "no-leak"
ISOLATION = "isolation"
PIN_COHERENCE = "pin-coherence"
WRITABLE_EXCLUSIVE = "writable-exclusive"
PINNED_EXCLUSIVE = "pinned-exclusive"
SWAP_SANITY = "swap-sanity"
FREE_SANITY = "free-sanity"
KSM_NOT_EXCLUSIVE = "ksm-not-exclusive"
ACCOUNTING = "accounting"
assert {KERNEL_BUG, MODEL_ERROR, NO_LEAK, ISOLATION, PIN_COHERENCE, WRITABLE_EXCLUSIVE,
        PINNED_EXCLUSIVE, SWAP_SANITY, FREE_SANITY, KSM_NOT_EXCLUSIVE,
        ACCOUNTING} == set(PROPERTIES)


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken promise: the property's name, what happened (for people), the scenario
    line of the step that broke it (None in the explorer, whose steps have no lines), and
    the page it names, if one."""

    property: str
    message: str
    step: int | None = None
    page: str | None = None

    def __post_init__(self) -> None:
        if self.property not in PROPERTIES:
            raise ValueError(f"unknown property {self.property!r}")

    def matches(self, what: str) -> bool:
        """Whether ``expect bug "what"`` takes this finding: *what* names its property
        (``no-leak``) or its kind (``kernel-bug``: any BUG_ON), or is part of its message.
        A model error is never expected: it is a bug of anonex."""
        if self.property == MODEL_ERROR:
            return False
        return what in (self.property, PROPERTIES[self.property].kind) or what in self.message


def model_error(exc: BaseException, where: str, step: int | None = None) -> Finding:
    """The finding of a Python exception inside the model, in *where* (the step)."""
    return Finding(MODEL_ERROR, f"model error (a bug of anonex, not of the kernel): "
                                f"{type(exc).__name__}: {exc} in {where}", step)


def join(findings: tuple[Finding, ...] | list[Finding]) -> str | None:
    """The findings' messages as one line (``StepResult.finding``), or None."""
    return "; ".join(f.message for f in findings) if findings else None


__all__ = ["ACCOUNTING", "FREE_SANITY", "ISOLATION", "KERNEL_BUG", "KSM_NOT_EXCLUSIVE",
           "MODEL_ERROR", "NO_LEAK", "PINNED_EXCLUSIVE", "PIN_COHERENCE", "PROPERTIES",
           "SWAP_SANITY", "WRITABLE_EXCLUSIVE", "Finding", "Kind", "Property", "join",
           "model_error"]
