"""The ``anonex`` command line (DESIGN §6).

Exit codes: 0 when every verdict is as expected (and nothing diverges), 1 for an unexpected
verdict or a divergence, 2 for a usage or input error. Input errors print file:line:column
and what was expected, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress

from anonex import BUILD, __version__
from anonex.boot.backend import BootedKernel, describe_env
from anonex.boot.kernels_cli import kernels_cmd
from anonex.explore.cli import explore_cmd
from anonex.harness.model import ModelBackend
from anonex.kernel.versions import boundary_versions
from anonex.observation import Backend
from anonex.report import text as rtext
from anonex.report.jsonout import trace_json
from anonex.report.tap import tap
from anonex.runner import Trace, run
from anonex.scenario.ast import Scenario
from anonex.scenario.errors import ScenarioError
from anonex.scenario.parser import parse_file
from anonex.versions import CURRENT, KernelVersion

if TYPE_CHECKING:
    from anonex.boot.images import KernelImage
    from anonex.fingerprint.document import KernelRules
    from anonex.fuzz import FuzzKernel, KernelReport

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="anonex: a kernel-faithful model of PG_anon_exclusive, COW, fork and "
                       "GUP, checked against the running kernel.")
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False)


def library_dir() -> Path:
    """The built-in scenario library."""
    return Path(str(resources.files("anonex").joinpath("library")))


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*.cow") if "live-draft" not in x.parts))
        elif p.exists():
            files.append(p)
        else:
            err.print(f"{p}: error: no such file or directory")
            raise typer.Exit(2)
    return files


def _parse_all(files: list[Path]) -> list[Scenario]:
    scens: list[Scenario] = []
    bad = 0
    for f in files:
        try:
            scens.append(parse_file(f))
        except ScenarioError as e:
            err.print(e.render(), markup=False, soft_wrap=True)
            bad += 1
    if bad:
        raise typer.Exit(2)
    return scens


def _version(text: str) -> KernelVersion:
    try:
        return KernelVersion.parse(text)
    except ValueError as e:
        err.print(f"error: {e}")
        raise typer.Exit(2) from None


def _live_backend() -> tuple[Backend | None, str]:
    try:
        from anonex.live import available
        from anonex.live.backend import LiveBackend
    except ImportError as e:  # pragma: no cover - the package ships it
        return None, f"the live backend is not installed ({e})"
    ok, why = available()
    if not ok:
        return None, why
    return LiveBackend(), ""


FileArg = Annotated[Path, typer.Argument(help="a .cow scenario file")]


class Layout(StrEnum):
    """The page-flag layouts ``--layout`` offers (anonex.kernel.flags.LAYOUTS)."""

    slab = "slab"
    mappedtodisk = "mappedtodisk"
    owner_2 = "owner_2"


LayoutOpt = Annotated[Layout | None, typer.Option(
    "--layout", help="where PG_anon_exclusive lives: slab (v1 RFC), mappedtodisk (5.19), "
                     "owner_2 (6.12+); default: the kernel version's own")]


def _layout(name: Layout | str | None) -> str | None:
    return None if name is None else Layout(name).value

TraceOpt = Annotated[bool, typer.Option("--trace", help="print every step and page")]
JsonOpt = Annotated[bool, typer.Option("--json", help="write the run as one JSON document")]
HtmlOpt = Annotated[Path | None, typer.Option(
    "--html", metavar="FILE", help="also write the run as a page of pictures, step by step "
                                   "(one self-contained HTML file)")]
DotOpt = Annotated[bool, typer.Option("--dot", help="write the run as a Graphviz picture "
                                                     "(dot -Tsvg)")]


@app.command("run")
def run_cmd(
    file: FileArg,
    kernel: Annotated[str, typer.Option("--kernel", "-k", help="kernel version to model")] =
    str(CURRENT),
    show_trace: TraceOpt = False,
    as_json: JsonOpt = False,
    as_dot: DotOpt = False,
    layout: LayoutOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Run one scenario on the model at a kernel version."""
    scen = _parse_all(_collect([file]))[0]
    t = run(scen, ModelBackend(_version(kernel), detail=show_trace or as_json or bool(html),
                               layout=_layout(layout)))
    if html is not None:
        _write_html(html, t)
    _emit_one(t, show_trace, as_json, as_dot)


BootOpt = Annotated[list[str] | None, typer.Option(
    "--boot", metavar="IMAGE",
    help="boot this kernel in a VM and run there: a kernel image (vmlinuz, a build tree's "
         "bzImage) or a Debian kernel's short name such as debian:6.1 (see anonex kernels)")]


@app.command("live")
def live_cmd(file: FileArg, show_trace: TraceOpt = False, as_json: JsonOpt = False,
             as_dot: DotOpt = False, html: HtmlOpt = None,
             boot: Annotated[str | None, typer.Option(
                 "--boot", metavar="IMAGE", help="run on this kernel, booted in a VM "
                 "(a kernel image or debian:NAME) instead of the running one")] = None
             ) -> None:
    """Run one scenario on the running kernel (needs root and /proc/kpageflags), or on a
    kernel booted in a VM (--boot). With --html, the page shows the model at the kernel's
    version beside it, differences marked."""
    scen = _parse_all(_collect([file]))[0]
    from anonex.live import LiveUnavailable

    booted = _booted_kernels([boot], [scen]) if boot else []
    if booted:
        be: Backend | None = booted[0][1]
    else:
        be, why = _live_backend()
        if be is None:
            err.print(f"anonex live: the live kernel is not available here: {why}")
            raise typer.Exit(4)
    assert be is not None
    try:
        t = run(scen, be)
    except LiveUnavailable as e:
        err.print(f"anonex live: the kernel is not available: {e.reason}")
        raise typer.Exit(4) from None
    finally:
        for _, b in booted:
            b.close()
    if not as_json and not as_dot:
        _kernel_header(err, be.name, t.version, t.env)
    if html is not None:
        _write_html(html, run(scen, ModelBackend(t.version, detail=True)), t)
    _emit_one(t, show_trace, as_json, as_dot)


def _write_html(path: Path, t: Trace, compare: Trace | None = None) -> None:
    from anonex.report.html import render_run

    _write_page(path, render_run(t, compare))


def _write_page(path: Path, page: str) -> None:
    """Write an --html page, or exit 2 saying why it cannot be written."""
    try:
        path.write_text(page)
    except OSError as e:
        err.print(f"error: --html {path}: {e.strerror}", markup=False)
        raise typer.Exit(2) from None
    err.print(f"wrote {path}", markup=False)


def _emit_one(t: Trace, show_trace: bool, as_json: bool, as_dot: bool = False) -> None:
    if as_dot:
        from anonex.report.dot import dot

        sys.stdout.write(dot(t))
    elif as_json:
        sys.stdout.write(json.dumps(trace_json(t), indent=2) + "\n")
    elif show_trace:
        rtext.trace(out, t)
    else:
        out.print(f"{t.scenario.name} on {t.backend}: ", rtext.verdict_text(t),
                  f" {t.reason}" if t.reason else "")
    raise typer.Exit(0 if t.as_expected else 1)


@app.command("check")
def check_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="scenario files or folders "
                                                             "(default: the built-in library)")]
    = None,
    kernel: Annotated[list[str] | None, typer.Option(
        "--kernel", "-k", help="model only these versions; a fingerprint document (FILE.json "
                               "from anonex fingerprint --save) models each of its kernels "
                               "with the rules it showed, and diffs that kernel with it")] =
    None,
    no_live: Annotated[bool, typer.Option("--no-live", help="do not run the live kernel")] =
    False,
    boot: BootOpt = None,
    as_tap: Annotated[bool, typer.Option("--tap", help="kselftest's KTAP output")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="write the check as one JSON "
                                                         "document")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="the whole matrix, and "
                                                                  "every divergence line")]
    = False,
    html: Annotated[Path | None, typer.Option(
        "--html", metavar="FILE", help="also write the check as one self-contained HTML "
                                       "page: the matrix, each cell opening its run")] = None,
    layout: LayoutOpt = None,
    rules_from_live: Annotated[bool, typer.Option(
        "--rules-from-live", help="fingerprint each real kernel first, and diff it with the "
                                  "model run with the rules it showed")] = False,
) -> None:
    """Run scenarios on the model at every boundary version, on the running kernel and on
    kernels booted in VMs (--boot); print a summary, the runs that need attention and every
    model-vs-kernel divergence."""
    from anonex.check import Options, RealKernel, check
    from anonex.fingerprint import Catalog
    from anonex.fingerprint.document import KernelRules
    from anonex.report import checkview

    files = _collect(paths or [library_dir()])
    scens = _parse_all(files)
    models, read = _models(kernel or [])
    if not kernel:
        vs = boundary_versions()
        models = [KernelRules.of_version(v) for v in sorted({*vs, CURRENT})]
    catalog = Catalog.load() if rules_from_live else None
    # a booted kernel runs the fingerprint scenarios first when it is to be read
    extra = [c for c in catalog.scenarios if c.path not in {s.path for s in scens}] \
        if catalog else []
    booted = _booted_kernels(boot or [], [*extra, *scens])
    kernels: list[RealKernel] = []
    if not no_live:
        live, live_why = _live_backend()
        kernels.append(RealKernel("live", live, live_why))
    kernels += [RealKernel(col, be) for col, be in booted]
    opts = Options(models, read, catalog, _layout(layout), keep_runs=html is not None,
                   draw=html is not None)
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as prog:
        result = check(scens, kernels, opts, _RichCheckProgress(prog))
    if html is not None:
        from anonex.report.html import render_check

        _write_page(html, render_check(result))
    if as_json:
        from anonex.report.jsonout import check_json

        sys.stdout.write(json.dumps(check_json(result), indent=2) + "\n")
    elif as_tap:
        out.print(tap(result), markup=False, soft_wrap=True)
    else:
        for k in result.kernels:
            if k.version is not None:
                _kernel_header(out, k.column, k.version, k.env)
        checkview.render(out, result, verbose)
    raise typer.Exit(1 if result.failed else 0)


class _RichCheckProgress:
    """The check's progress on a rich bar: runs done of all, and per backend."""

    def __init__(self, prog: Progress) -> None:
        self.prog = prog
        self.task = prog.add_task("checking", total=None)
        self.per: dict[str, int] = {}
        self.now = ""

    def total(self, runs: int) -> None:
        self.prog.update(self.task, total=runs)

    def done(self, runs: int, backend: str) -> None:
        self.per[backend] = self.per.get(backend, 0) + runs
        self.prog.advance(self.task, runs)
        self._describe()

    def working(self, backend: str) -> None:
        self.now = backend
        self._describe()

    def _describe(self) -> None:
        parts = [f"{b} {n}" for b, n in self.per.items()]
        now = f"running on {self.now}; " if self.now else ""
        self.prog.update(self.task, description=escape(f"{now}done: {', '.join(parts)}"))


def _models(specs: list[str]) -> tuple[list[KernelRules], list[KernelRules]]:
    """The model columns of ``--kernel`` (versions, and the kernels of fingerprint
    documents), and the kernels read from documents (for the diffs)."""
    from anonex.fingerprint.document import DocumentError, KernelRules, load

    models: list[KernelRules] = []
    read: list[KernelRules] = []
    for spec in specs:
        if spec.endswith(".json") or Path(spec).is_file():
            try:
                kernels = load(Path(spec))
            except DocumentError as e:
                err.print(f"error: --kernel {e}", markup=False, soft_wrap=True)
                raise typer.Exit(2) from None
            models += kernels
            read += kernels
        else:
            models.append(KernelRules.of_version(_version(spec)))
    return models, read


def _booted_kernels(specs: list[str], scens: list[Scenario]) -> list[tuple[str, BootedKernel]]:
    """A :class:`~anonex.boot.backend.BootedKernel` for each ``--boot`` argument, named for
    its matrix column (see :func:`_boot_images`)."""
    return [(col, BootedKernel(image, scens, name=col)) for col, image in _boot_images(specs)]


def _boot_images(specs: list[str]) -> list[tuple[str, KernelImage]]:
    """The kernel image of each ``--boot`` argument (fetching Debian kernels first, with a
    progress bar), each with a distinct column name; exit 2 for one that cannot be had."""
    if not specs:
        return []
    from anonex.boot.images import ImageError, resolve
    from anonex.boot.kernels_cli import download_progress
    from anonex.boot.vm import BootError, check_tools

    try:
        check_tools()
    except BootError as e:
        err.print(f"error: --boot: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out: list[tuple[str, KernelImage]] = []
    with download_progress(err) as progress:
        for spec in specs:
            try:
                image = resolve(spec, progress)
            except ImageError as e:
                err.print(f"error: --boot {spec}: {e}", markup=False, soft_wrap=True)
                raise typer.Exit(2) from None
            col = image.label
            n = 2
            while col in [c for c, _ in out] or col == "live":
                col, n = f"{image.label}#{n}", n + 1
            out.append((col, image))
    return out


def _kernel_header(console: Console, col: str, version: KernelVersion,
                   env: dict[str, Any]) -> None:
    """What a real kernel is and what it cannot show, once, before its results."""
    if "accel" in env:
        console.print(describe_env(col, version, env), markup=False, soft_wrap=True)
    else:
        rel = env.get("kernel_release") or env.get("kernel", "")
        console.print(f"{col}: Linux {version} ({rel}), the running kernel", markup=False)
    for note in dict.fromkeys(env.get("notes") or []):
        console.print(f"  note: {note}", markup=False, soft_wrap=True)


@app.command("fuzz")
def fuzz_cmd(
    boot: BootOpt = None,
    no_live: Annotated[bool, typer.Option("--no-live", help="do not run the live kernel")] =
    False,
    walks: Annotated[int, typer.Option("--walks", help="random walks per kernel")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="the walks' random seed")] = 1,
    steps: Annotated[str, typer.Option("--steps", help="steps a walk takes after the "
                                                       "setup: FIRST-LAST or N")] = "4-9",
    kinds: Annotated[str, typer.Option("--kinds", help="regions the walks map: anon, thp, "
                                                       "hugetlb")] = "anon,thp",
    out_dir: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="write each shrunk reproducer as "
                                     "DIR/KERNEL-walk-SEED-I.cow")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Random walks on the running kernel and on booted ones (--boot), each diffed with the
    model at that kernel's version; every walk that diverges is shrunk to a minimal
    scenario. Exit 0: none diverges, 1: some do, 4: a kernel could not run."""
    from anonex.fuzz import Options, fuzz, reproducer_name

    lo, _, hi = steps.partition("-")
    if not (lo.isdigit() and (hi or lo).isdigit()):
        err.print(f"error: --steps {steps}: expected FIRST-LAST or N, e.g. 4-9", markup=False)
        raise typer.Exit(2)
    try:
        opts = Options(walks=walks, seed=seed, min_steps=int(lo), max_steps=int(hi or lo),
                       kinds=tuple(x.strip() for x in kinds.split(",") if x.strip()))
    except ValueError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2) from None
    if no_live and not boot:
        err.print("error: nothing to fuzz: --no-live and no --boot IMAGE")
        raise typer.Exit(2)
    kernels, not_run = _fuzz_kernels(boot or [], no_live)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as prog:
        report = fuzz(kernels, opts, _RichProgress(prog))
    report.kernels[:0] = not_run
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for k in report.kernels:
            for w, _ in k.distinct():  # walks that shrink to the same steps: one file
                (out_dir / reproducer_name(k.name, w.name)).write_text(w.reproducer)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        for k in report.kernels:
            if k.version is not None:
                _kernel_header(out, k.name, k.version, k.env)
        for k in report.kernels:
            rtext.fuzz_walks(out, k)
        rtext.fuzz_table(out, report)
        n = sum(len(k.walks) for k in report.kernels)
        out.print(f"{n} walks on {len(report.kernels)} kernel"
                  f"{'s' * (len(report.kernels) != 1)}: {report.diverging} diverging"
                  + (f", reproducers in {out_dir}" if out_dir and report.diverging else ""))
    raise typer.Exit(1 if report.diverging else 4 if report.unavailable else 0)


def _fuzz_kernels(boot: list[str], no_live: bool) -> tuple[list[FuzzKernel], list[KernelReport]]:
    """The kernels to fuzz, and a report for the running kernel when it cannot run."""
    from anonex.fuzz import BootKernel, KernelReport, live_kernel
    from anonex.live import available

    kernels: list[FuzzKernel] = []
    not_run: list[KernelReport] = []
    if not no_live:
        ok, why = available()
        if ok:
            kernels.append(live_kernel())
        else:
            not_run.append(KernelReport("live", unavailable=why))
    kernels += [BootKernel(image, name=col) for col, image in _boot_images(boot)]
    return kernels, not_run


class _RichProgress:
    """The fuzzer's progress on a rich progress bar."""

    def __init__(self, prog: Progress) -> None:
        self.prog = prog
        self.task = prog.add_task("fuzzing", total=None)

    def phase(self, text: str, total: int) -> None:
        self.prog.reset(self.task, total=total, description=escape(text))

    def advance(self) -> None:
        self.prog.advance(self.task)


@app.command("fingerprint")
def fingerprint_cmd(
    boot: BootOpt = None,
    no_live: Annotated[bool, typer.Option("--no-live", help="do not run the live kernel")] =
    False,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also say what each "
                                                                  "scenario showed of each rule")]
    = False,
    save: Annotated[Path | None, typer.Option(
        "--save", metavar="FILE", help="also write the JSON document to FILE (for anonex "
                                       "check --kernel FILE)")] = None,
) -> None:
    """Which rules of the version table each kernel follows, rule by rule, read from what it
    does (the library's fingerprint/ scenarios) rather than from its version number. Exit 0:
    every observable rule is as the table says for the kernel's version, 1: some differ,
    4: a kernel could not run."""
    from anonex.fingerprint import Catalog, Fingerprint, fingerprint
    from anonex.fingerprint.document import document
    from anonex.live import LiveUnavailable
    from anonex.report import fingerprint as rfp

    if no_live and not boot:
        err.print("error: nothing to fingerprint: --no-live and no --boot IMAGE")
        raise typer.Exit(2)
    catalog = Catalog.load()
    scens = list(catalog.scenarios)
    booted = _booted_kernels(boot or [], scens)
    kernels: list[tuple[str, Backend | None, str]] = []
    if not no_live:
        live, why = _live_backend()
        kernels.append(("live", live, why))
    kernels += [(col, be, "") for col, be in booted]
    fps: list[Fingerprint] = []
    not_run: dict[str, str] = {}
    names = {s.name for s in scens}
    try:
        with Progress(console=err, transient=True, disable=not err.is_terminal) as prog:
            task = prog.add_task("fingerprint", total=len(scens) * len(kernels))
            # one guest at a time: two guests under emulation on this two-core machine took
            # 97-226 s to boot against 19-30 s alone (benchmarks/fingerprint.md)
            for col, be, why in kernels:
                if be is None:
                    not_run[col] = why
                    continue
                def step(what: str, col: str = col) -> None:
                    prog.update(task, description=escape(f"{col}: {what}"))
                    if what in names:
                        prog.advance(task)
                try:
                    fp = fingerprint(col, be, catalog, step)
                except LiveUnavailable as e:
                    not_run[col] = e.reason
                    continue
                fps.append(fp)
    finally:
        for _, b in booted:
            b.close()
    for fp in fps:  # a guest's run time is known once it has finished
        be_ = dict(booted).get(fp.kernel)
        if be_ is not None:
            fp.env = {**fp.env, **be_.boot_facts()}
    doc = json.dumps(document(fps, not_run), indent=2) + "\n"
    if save is not None:
        save.write_text(doc)
    if as_json:
        sys.stdout.write(doc)
    else:
        for fp in fps:
            _kernel_header(out, fp.kernel, fp.version, fp.env)
            rfp.table(out, fp, verbose)
        for fp in fps:
            rfp.summary(out, fp)
        for col, why in not_run.items():
            what = "live kernel" if col == "live" else f"booted kernel {col}"
            out.print(f"[yellow]{what} not run[/]: {escape(why)}")
    raise typer.Exit(1 if any(fp.differing for fp in fps) else 4 if not_run else 0)


app.command("explore")(explore_cmd)
app.command("kernels")(kernels_cmd)


@app.command("page-types", add_help_option=False, context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True,
    "allow_interspersed_args": False})
def page_types_cmd(ctx: typer.Context) -> None:
    """Page flags like the kernel's tools/mm/page-types, plus exclusivity (-h for options)."""
    from anonex.pagetypes.cli import main as pt_main

    raise typer.Exit(pt_main(list(ctx.args)))


@app.command("version")
def version_cmd() -> None:
    """Print anonex's version and the kernel it would run live."""
    out.print(f"anonex {__version__}; model: {BUILD}; running kernel {os.uname().release}")


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Commands' help from their docstrings with the source's line breaks taken out (a
    blank line still starts a paragraph), and the first sentence as the short help that
    ``anonex --help`` lists."""
    import re

    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if not doc:
            continue
        paras = [" ".join(x.split()) for x in re.split(r"\n\s*\n", doc.strip())]
        info.help = "\n\n".join(paras)
        first = re.split(r"(?<=[.;])\s", paras[0], maxsplit=1)[0]
        info.short_help = info.short_help or first.rstrip(".;")


_unwrap_help(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
