"""``anonex fingerprint``: which rules of the version table a kernel follows, read from what
it does rather than from its version number.

:mod:`~anonex.fingerprint.catalog` names the questions (the library's ``fingerprint/``
scenarios, each tied to its rows by ``rule NAME``), :mod:`~anonex.fingerprint.judge` reads
the answers against the model run on either side of each row, and
:mod:`~anonex.fingerprint.document` writes and reads the result as JSON, which
``anonex check --kernel FILE`` models.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anonex.fingerprint.catalog import Catalog
from anonex.fingerprint.judge import Fingerprint, RuleResult, judge
from anonex.observation import Backend
from anonex.runner import Trace, run

__all__ = ["Catalog", "Fingerprint", "RuleResult", "fingerprint", "judge_traces", "run_catalog"]


def judge_traces(name: str, traces: list[Trace], catalog: Catalog,
                 progress: Callable[[str], object] | None = None) -> Fingerprint:
    """The fingerprint of the kernel that produced *traces* (its runs of the catalogue's
    scenarios, in any order; missing ones count as not asked)."""
    if not traces:
        raise ValueError("no runs to read a fingerprint from")
    first = traces[0]
    env = first.env
    release = str(env.get("kernel_release") or env.get("kernel") or "")
    fp = judge(name, first.version, release, catalog, {t.scenario.name: t for t in traces},
               progress)
    fp.env = dict(env)
    return fp


def run_catalog(backend: Backend, catalog: Catalog,
                progress: Callable[[str], object] | None = None) -> list[Trace]:
    """Every fingerprint scenario run on *backend*. Raises
    :class:`~anonex.live.LiveUnavailable` when the kernel cannot run them."""
    traces = []
    for scen in catalog.scenarios:
        if progress is not None:
            progress(scen.name)
        traces.append(run(scen, backend))
    return traces


def fingerprint(name: str, backend: Backend, catalog: Catalog,
                progress: Callable[[str], object] | None = None) -> Fingerprint:
    """Run every fingerprint scenario on *backend* and read the rules it follows.
    Raises :class:`~anonex.live.LiveUnavailable` when the kernel cannot run them."""
    t0 = time.monotonic()
    traces = run_catalog(backend, catalog, progress)
    ran = time.monotonic() - t0
    fp = judge_traces(name, traces, catalog, progress)
    fp.seconds = time.monotonic() - t0
    fp.env["kernel_seconds"] = round(ran, 1)
    return fp
