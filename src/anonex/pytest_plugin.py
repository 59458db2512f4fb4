"""pytest collects ``.cow`` scenarios: ``pytest my-scenarios/``.

Installed with anonex (entry point ``pytest11``: ``anonex``); from a source tree that is
not installed, load it with ``-p anonex.pytest_plugin``. Each ``.cow`` file is a test file
with one item per model version, ``FILE.cow::model@VERSION`` (``--anonex-kernel VERSION``,
repeatable; default: the running kernel's upstream version), and with ``--anonex-live`` one
more, ``FILE.cow::live``: the scenario on the running kernel, diffed with the model at its
version (skipped, with the reason, where the live backend cannot run).

Verdicts map to outcomes: pass → passed, xfail → xfailed, skip → skipped, fail and xpass
(strict) → failed with the reason and the failed expectations, a divergence from the model
→ failed with the divergences. A file that does not parse is a collection error.

A ``.cow`` file is collected when pytest was pointed at it or at a folder above it, on the
command line or through ``testpaths``; a bare ``pytest`` that falls back to the current
folder collects none unless the ini option ``anonex_collect = true``. As in ``anonex
check``, files in a ``live-draft`` folder are left out unless named themselves.
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from anonex.versions import CURRENT, KernelVersion

if TYPE_CHECKING:  # the model is imported when a scenario is collected, not by every pytest
    from _pytest._code.code import TerminalRepr

    from anonex.runner import Trace
    from anonex.scenario.ast import Scenario

_VERSIONS = pytest.StashKey[list[KernelVersion]]()


def running_version() -> KernelVersion:
    """The running kernel's upstream version as the live backend reads it, else CURRENT."""
    try:
        from anonex.live.features import running_version as read

        return read()[0]
    except (ImportError, OSError, ValueError):
        return CURRENT


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("anonex", "anonex scenarios (.cow files)")
    group.addoption("--anonex-kernel", action="append", default=[], metavar="VERSION",
                    help="run each scenario on the model at this kernel version "
                         "(repeatable; default: the running kernel's version)")
    group.addoption("--anonex-live", action="store_true", default=False,
                    help="also run each scenario on the running kernel and diff it with "
                         "the model (needs root and /proc/kpageflags)")
    parser.addini("anonex_collect", type="bool", default=False,
                  help="collect .cow files even when pytest was given no path")


def pytest_configure(config: pytest.Config) -> None:
    specs: list[str] = config.getoption("anonex_kernel") or []
    try:
        versions = [KernelVersion.parse(s) for s in specs]
    except ValueError as e:
        raise pytest.UsageError(f"--anonex-kernel: {e}") from None
    config.stash[_VERSIONS] = list(dict.fromkeys(versions))


def _versions(config: pytest.Config) -> list[KernelVersion]:
    """The model versions of every scenario (the default read once, when first needed)."""
    if not config.stash[_VERSIONS]:
        config.stash[_VERSIONS] = [running_version()]
    return config.stash[_VERSIONS]


def _named(config: pytest.Config) -> list[Path] | None:
    """The paths pytest was given (command line or testpaths), or None for a bare run."""
    if config.args_source is pytest.Config.ArgsSource.INVOCATION_DIR and \
            not config.getini("anonex_collect"):
        return None
    base = config.invocation_params.dir
    return [Path(os.path.abspath(base / a.split("::", 1)[0])) for a in config.args]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CowFile | None:
    # pytest visits only what it was given: the rule is about bare runs and live-draft/
    named = _named(parent.config) if file_path.suffix == ".cow" else None
    if named is None or ("live-draft" in file_path.parts and file_path not in named):
        return None
    return CowFile.from_parent(parent, path=file_path)


class ScenarioFailure(Exception):
    """A run whose verdict or divergences fail the item; the message says it all."""


class CowFile(pytest.File):
    """One ``.cow`` file: an item per model version, and ``live`` with ``--anonex-live``."""

    def collect(self) -> Iterator[CowItem]:
        from anonex.scenario.errors import ScenarioError
        from anonex.scenario.parser import parse_file

        try:
            scen = parse_file(self.path)
        except ScenarioError as e:
            shown = ScenarioError(self._shown(), e.line, e.column, e.message, e.source_line)
            raise self.CollectError(shown.render()) from None
        for v in _versions(self.config):
            yield CowItem.from_parent(self, name=f"model@{v}", scenario=scen, version=v)
        if self.config.getoption("anonex_live"):
            yield CowItem.from_parent(self, name="live", scenario=scen, version=None)

    def _shown(self) -> str:
        try:
            return str(self.path.relative_to(self.config.invocation_params.dir))
        except ValueError:
            return str(self.path)


class CowItem(pytest.Item):
    """A scenario on the model at one version (*version*), or on the live kernel (None)."""

    def __init__(self, *, scenario: Scenario, version: KernelVersion | None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.version = version
        self.line = 1  # where a skip points (the skipped step)

    def runtest(self) -> None:
        from anonex.harness.model import ModelBackend
        from anonex.runner import run

        if self.version is not None:
            self._judge(run(self.scenario, ModelBackend(self.version), full=False))
            return
        self._judge(self._live())

    def _live(self) -> Trace:
        import anonex.live
        from anonex.diff import diff
        from anonex.harness.model import ModelBackend
        from anonex.runner import run

        ok, why = anonex.live.available()
        lt: Trace | None = None
        if ok:
            from anonex.live.backend import LiveBackend

            try:
                lt = run(self.scenario, LiveBackend())
            except anonex.live.LiveUnavailable as e:
                why = e.reason
        if lt is None:
            if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
                raise ScenarioFailure(f"ANONEX_REQUIRE_LIVE=1 but the live kernel is not "
                                      f"available: {why}")
            pytest.skip(f"live kernel not available: {why}")
        mt = run(self.scenario, ModelBackend(lt.version))
        divs = diff(mt, lt)
        if divs:
            from rich.console import Console

            from anonex.report import text as rtext

            out = io.StringIO()
            console = Console(file=out, width=120, highlight=False, color_system=None)
            rtext.divergences(console, self.scenario.name, mt.backend, "live", divs)
            raise ScenarioFailure(out.getvalue().rstrip() +
                                  f"\n(live verdict: {lt.verdict}; model: {mt.verdict})")
        return lt

    def _judge(self, t: Trace) -> None:
        if t.verdict == "xfail":
            pytest.xfail(t.reason)
        elif t.verdict == "skip":
            self.line = t.steps[-1].step.pos.line if t.steps else 1
            pytest.skip(t.reason)
        elif t.verdict == "xpass":
            raise ScenarioFailure(f"XPASS (strict): {t.reason}")
        elif t.verdict == "fail":
            lines = [f"fail: {t.reason}"]
            bad = [e for e in t.expects if e.result == "fail"]
            if bad:
                lines.append("failed expectations:")
                lines += [f"  line {e.expect.pos.line}: {e.expect.text()}  ({e.detail})"
                          for e in bad]
            raise ScenarioFailure("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.scenario.name} on {self.name}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A skipped scenario points at its skipped step, not at this module."""
    rep = yield
    if isinstance(item, CowItem) and rep.skipped and isinstance(rep.longrepr, tuple) and \
            not hasattr(rep, "wasxfail"):
        rep.longrepr = (str(item.path), item.line, rep.longrepr[2])
    return rep
