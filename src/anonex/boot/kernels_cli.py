"""``anonex kernels``: the kernels ``anonex check --boot`` can boot by name.

Lists what is in the cache (name, upstream version, release, size on disk, folder) and the
short names that can be fetched; ``--fetch NAME`` (repeatable, ``all`` for every short name)
fetches now, with a progress bar on stderr when it is a terminal. Exit status: 0, 1 when a
fetch failed, 2 for a bad name.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from anonex.boot import debian
from anonex.boot.images import ImageError
from anonex.boot.images import Progress as ProgressFn


@contextmanager
def download_progress(console: Console) -> Iterator[ProgressFn]:
    """A ``progress(what, done, total)`` callback drawing a download bar on *console*
    (nothing when it is not a terminal); ``total`` 0 is a phase without a byte count."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                   transient=True, disable=not console.is_terminal)
    tasks: dict[str, TaskID] = {}

    def update(what: str, done: int, total: int) -> None:
        key = what.split(": ", 1)[0]  # one bar per kernel, whatever its phase
        if key not in tasks:
            tasks[key] = bar.add_task(what, total=None)
        if total:
            bar.update(tasks[key], description=what, completed=done, total=total)
        else:  # a phase without bytes (reading the index, unpacking): keep the bar
            bar.update(tasks[key], description=what)

    with bar:
        yield update


def _names(values: list[str]) -> list[debian.Wanted]:
    out: list[debian.Wanted] = []
    for v in values:
        for name in (x.strip() for x in v.split(",") if x.strip()):
            if name == "all":
                out.extend(debian.parse_name(k.name) for k in debian.TABLE)
            else:
                out.append(debian.parse_name(name))
    unique: dict[str, debian.Wanted] = {}
    for w in out:
        unique.setdefault(w.name, w)
    return list(unique.values())


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _doc(recs: list[debian.Cached], fetched: list[str]) -> dict[str, Any]:
    names = {r.name for r in recs}
    return {
        "cache": str(debian.kernels_dir()),
        "cached": [{"name": r.name, "suite": r.suite, "packages": list(r.packages),
                    "upstream": r.upstream, "release": r.release, "kimg": str(r.kimg),
                    "moddir": str(r.moddir), "path": str(r.path), "size": r.disk_size(),
                    "fetched_at": r.fetched_at} for r in recs],
        "known": [{"name": k.name, "suite": k.suite, "series": k.series, "version": k.version,
                   "cached": k.name in names} for k in debian.TABLE],
        "fetched": fetched,
    }


def _print(out: Console, recs: list[debian.Cached]) -> None:
    if recs:
        t = Table(title=f"Cached kernels ({debian.kernels_dir()})", title_justify="left")
        for col in ("name", "upstream", "release", "size", "path"):
            t.add_column(col, justify="right" if col == "size" else "left",
                         overflow="fold")
        for r in recs:
            t.add_row(r.name, r.upstream, r.release, _size(r.disk_size()), str(r.path))
        out.print(t)
    else:
        out.print(f"No kernel cached yet ({debian.kernels_dir()}).")
    versions = {r.upstream for r in recs}
    t = Table(title="Debian kernels by name", title_justify="left")
    for col in ("name", "suite", "upstream", "state"):
        t.add_column(col)
    for k in debian.TABLE:
        state = "cached" if k.version in versions else "fetched on first use"
        t.add_row(k.name, k.suite, k.version, state)
    out.print(t)
    out.print("`anonex check --boot debian:6.1` fetches a kernel on first use; "
              "`anonex kernels --fetch NAME` fetches it now; debian:X.Y.Z names an exact "
              "upstream version.")


def kernels_cmd(
    fetch: Annotated[list[str] | None, typer.Option(
        "--fetch", metavar="NAME",
        help="fetch this kernel now (debian:6.1, debian:5.10.223, …; repeatable; 'all' for "
             "every short name)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """List the kernels `anonex check --boot` can boot by name, cached and fetchable."""
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    out = Console(highlight=False, width=width)
    err = Console(stderr=True, highlight=False)
    try:
        wanted = _names(fetch or [])
    except ImageError as e:
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    fetched: list[str] = []
    failed = False
    with download_progress(err) as progress:
        for w in wanted:
            try:
                rec = debian.fetch(w.name, progress)
            except ImageError as e:
                err.print(f"error: {e}", markup=False, soft_wrap=True)
                failed = True
                continue
            fetched.append(w.name)
            if not as_json:
                err.print(f"{w.name}: {rec.upstream} ({rec.release}) in {rec.path}",
                          markup=False, soft_wrap=True)
    recs = debian.cached()
    if as_json:
        sys.stdout.write(json.dumps(_doc(recs, fetched), indent=2) + "\n")
    else:
        _print(out, recs)
    if failed:
        raise typer.Exit(1)
