"""What can go wrong inside the model.

:class:`KernelBug` is a finding (:meth:`KernelBug.finding`, property ``no-kernel-bug``):
the model hit a ``BUG_ON``/``VM_BUG_ON`` (or broke an invariant) exactly where the kernel
would. The backend reports it with the step and the page; it never crashes the tool.
:class:`Segfault` is what user space would get (SIGSEGV, EFAULT).
"""

from __future__ import annotations

from anonex.findings import KERNEL_BUG, Finding


class KernelBug(Exception):
    """A ``VM_BUG_ON``/``BUG_ON`` (or ``VM_WARN``) the model reached, with the page it names."""

    def __init__(self, check: str, page: str = "", where: str = "") -> None:
        self.check = check
        self.page = page
        self.where = where
        super().__init__(self.describe())

    def describe(self) -> str:
        s = f"KernelBug: {self.check}"
        if self.where:
            s += f" in {self.where}"
        if self.page:
            s += f" (page {self.page})"
        return s

    def finding(self, step: int | None = None) -> Finding:
        """This bug as a finding of property ``no-kernel-bug`` (kind ``kernel-bug``)."""
        return Finding(KERNEL_BUG, self.describe(), step, self.page or None)


class Segfault(Exception):
    """The access is not allowed: the process would get SIGSEGV, a syscall EFAULT."""


class NotModelled(Exception):
    """A path of the kernel the model does not have (the harness turns it into a skipped
    step, never a finding)."""
