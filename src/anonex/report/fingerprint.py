"""A kernel's fingerprint as a rich table and a summary line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from anonex.fingerprint.judge import Fingerprint, RuleResult

MARK_STYLE = {"as expected": "green", "backported": "bold yellow", "missing": "bold red",
              "unobservable": "dim", "inconsistent": "bold magenta"}


def _yes(v: bool | None) -> str:
    return "—" if v is None else "holds" if v else "absent"


def _since(r: RuleResult) -> str:
    b = r.boundary
    s = str(b.since)
    if b.backports:
        s += " (" + ", ".join(str(x) for x in b.backports) + ")"
    if b.until is not None:
        s += f"–{b.until}"
        if b.until_backports:
            s += " (" + ", ".join(str(x) for x in b.until_backports) + ")"
    return s


def _expected(r: RuleResult, fp: Fingerprint) -> str:
    """The table's answer, saying when a stable backport decides it."""
    b = r.boundary
    text = _yes(r.expected)
    series = fp.version.major_minor
    if any(x.major_minor == series for x in (*b.backports, *b.until_backports)):
        text += " (stable)"
    return text


def _how(r: RuleResult) -> str:
    """What decided the row: the scenario, or why nothing could."""
    if r.observed is not None:
        deciding = [x.scenario for x in r.readings if x.says in ("holds", "absent")]
        extra = f"; {r.reason}" if r.reason else ""
        return ", ".join(deciding) + extra
    return r.reason


def table(console: Console, fp: Fingerprint, verbose: bool = False) -> None:
    """The rule-by-rule table of one kernel (*verbose*: then what each scenario said)."""
    t = Table(title=f"{fp.kernel}: Linux {fp.version} ({fp.release})", header_style="bold",
              title_justify="left")
    t.add_column("rule", no_wrap=True)
    t.add_column("since", no_wrap=True)
    t.add_column("kernel did", no_wrap=True)
    t.add_column(f"table ({fp.version})", no_wrap=True)
    t.add_column("", no_wrap=True)
    t.add_column("shown by / why not", overflow="fold")
    for r in fp.results:
        mark = "" if r.mark == "as expected" else \
            "unobservable here" if r.mark == "unobservable" else r.mark
        b = r.boundary
        rule = r.rule + ("\n" + ", ".join(b.cves) if b.cves else "")
        t.add_row(rule, _since(r), _yes(r.observed), _expected(r, fp),
                  Text(mark, style=MARK_STYLE[r.mark]), _how(r))
    console.print(t)
    if verbose:
        for r in fp.results:
            for x in r.readings:
                detail = f": {x.detail}" if x.detail else ""
                console.print(f"  {r.rule}: {x.scenario} says {x.says}{detail}",
                              markup=False, soft_wrap=True)


def summary(console: Console, fp: Fingerprint) -> None:
    """One line: the closest era and what differs from the version number."""
    shown = len(fp.observed)
    differ = fp.differing
    head = Text(f"{fp.kernel}: ", style="bold")
    head.append(f"closest era {fp.closest} ({fp.closest_misses} of {shown} observable "
                f"rules differ from it); ")
    if not differ:
        head.append(f"every observable rule is as the table says for {fp.version}",
                    style="green")
    else:
        head.append(f"differs from the table for {fp.version}: ", style="bold yellow")
        head.append(", ".join(f"{r.rule} ({r.mark})" for r in differ))
    boot, ran = fp.env.get("boot_seconds"), fp.env.get("run_seconds")
    if boot is not None:
        head.append(f" · boot {boot:.0f} s, guest run {ran or 0:.0f} s")
    else:
        head.append(f" · {fp.seconds:.0f} s")
    console.print(head)
