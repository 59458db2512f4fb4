"""Text output with rich: the check matrix, divergences, one run step by step, the fuzzer's
summary."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from anonex.diff import Divergence, group
from anonex.fuzz.core import FuzzReport, KernelReport
from anonex.observation import PageObs
from anonex.runner import Trace

STYLE = {"pass": "green", "xfail": "cyan", "skip": "yellow", "fail": "bold red",
         "xpass": "bold magenta"}


SHORT = {"pass": "ok", "xfail": "xf", "skip": "sk", "fail": "FAIL", "xpass": "XPASS"}
def verdict_text(t: Trace, short: bool = False) -> Text:
    s = SHORT[t.verdict] if short else t.verdict
    if t.unobservable and t.verdict == "pass":
        s += "?" if short else f" ({t.unobservable} unobservable)"
    return Text(s, style=STYLE.get(t.verdict, ""))


def problems(console: Console, cells: dict[tuple[str, str], Trace]) -> None:
    """Every unexpected verdict with its reason, and the reasons for skips (once each)."""
    skips: dict[str, list[str]] = {}
    for (name, col), t in cells.items():
        if not t.as_expected:
            console.print(f"[bold red]{t.verdict}[/] {name} on {col}: {escape(t.reason)}")
        elif t.verdict == "skip":
            why = t.skip_reason or t.reason
            skips.setdefault(why or t.reason, []).append(f"{name}@{col}")
    for reason, where in skips.items():
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        console.print(f"[yellow]skip[/] {shown}: {escape(reason)}")


MAX_DIVERGENCE_LINES = 20  # per scenario; the rest is counted


def divergences(console: Console, name: str, a: str, b: str, divs: list[Divergence],
                max_lines: int = MAX_DIVERGENCE_LINES) -> None:
    """One scenario's divergences, grouped (:func:`anonex.diff.group`): a heading naming
    the first diverging step, then one line per step, process, region and field with page
    ranges, in step order, at most *max_lines* of them."""
    groups = group(divs)
    if not groups:
        return
    first = groups[0]
    n = len(divs)
    console.print(f"[bold red]diverges[/] {escape(name)} on {escape(b)} ({escape(a)}): "
                  f"{n} divergence{'s' * (n != 1)} "
                  f"in {len(groups)} line{'s' * (len(groups) != 1)}, first at line "
                  f"{first.line} ({escape(first.step)})")
    cut = len(groups) if len(groups) <= max_lines + 1 else max_lines  # not "… and 1 more"
    for g in groups[:cut]:
        console.print(f"  {escape(g.describe(a, b))}")
    rest = groups[cut:]
    if rest:
        n_rest = sum(g.count for g in rest)
        console.print(f"  [dim]… and {len(rest)} more line{'s' * (len(rest) != 1)} "
                      f"({n_rest} divergence{'s' * (n_rest != 1)})[/]")


def _page_line(o: PageObs) -> str:
    if o.state != "present":
        extra = ""
        if "swp_exclusive" in o.extra:
            extra = f" swp_exclusive={int(o.extra['swp_exclusive'])}"
        return f"{o.proc} {o.region}[{o.index}]: {o.state}{extra}"
    bits = []
    if o.zero:
        bits.append("zero")
    if o.anon_exclusive:
        bits.append("EXCL")
    elif o.anon_exclusive is None:
        bits.append("excl?")
    if o.ksm:
        bits.append("ksm")
    if o.thp:
        bits.append("thp")
    ex = o.extra
    pte = ""
    if "pte_write" in ex:
        pte = " pte=" + ("W" if ex["pte_write"] else "R") + ("D" if ex["pte_dirty"] else "")
    ref = f" ref={ex['refcount']}" if "refcount" in ex else ""
    pins = f" pins={ex['pincount']}" if ex.get("pincount") else ""
    fl = f" flags={'|'.join(ex['flags'])}" if ex.get("flags") else ""
    if "kpf" in ex:
        fl += f" kpf={ex['kpf']:#x}"
    return (f"{o.proc} {o.region}[{o.index}]: {o.page} {' '.join(bits) or '-'} "
            f"map={o.mapcount}{ref}{pins}{pte}{fl} data={o.data!r}")


def trace(console: Console, t: Trace) -> None:
    """``--trace``: each step, what it returned, and the pages it involves."""
    console.print(f"[bold]{t.scenario.title or t.scenario.name}[/] on {t.backend}")
    for ex in t.initial_expects:
        console.print(f"  {ex.result:>5} {ex.expect.text()}")
    for rec in t.steps:
        st = rec.step
        res = rec.result
        head = f"[bold]{st.pos.line:>3}[/] {escape(st.text())}"
        if res.value is not None:
            head += f"  → {escape(repr(res.value))}"
        if st.label is not None:
            head += escape(f"  [faults={res.faults} {rec.outcome}]")
        console.print(head)
        if res.skipped:
            console.print(f"      [yellow]skip[/]: {escape(res.skipped)}")
        if res.error:
            console.print(f"      [red]error[/]: {escape(res.error)}")
        if res.finding:
            console.print(f"      [bold red]finding[/]: {escape(res.finding)}")
        involved = _involved(rec.step, rec.obs)
        for o in involved:
            console.print("      " + _page_line(o), highlight=False, markup=False)
        for ex in rec.expects:
            style = {"pass": "green", "fail": "bold red", "unobservable": "yellow"}.get(
                ex.result, "dim")
            console.print(f"    [{style}]{ex.result:>5}[/] {escape(ex.expect.text())}  "
                          f"({escape(ex.detail)})")
    console.print(Text("verdict: ") + verdict_text(t) + Text(f" {t.reason}" if t.reason else ""))


def _involved(step: object, obs: dict[tuple[str, str, int], PageObs]) -> list[PageObs]:
    from anonex.scenario.ast import Step

    assert isinstance(step, Step)
    if step.loc is None:
        regions = None
    else:
        regions = {step.loc.region}
        if step.op == "mremap" and step.name:
            regions.add(step.name)
    out = [o for o in obs.values() if regions is None or o.region in regions]
    if step.loc is not None and step.loc.first is not None:
        idx = set(step.loc.pages(1 << 20))
        out = [o for o in out if o.index in idx or o.region != step.loc.region]
    return sorted(out, key=lambda o: (o.region, o.index, o.proc))[:64]


def fuzz_walks(console: Console, k: KernelReport) -> None:
    """``anonex fuzz``: each distinct reproducer of one kernel's diverging walks: its
    divergences, how it was shrunk, its steps."""
    for w, same in k.distinct():
        s = w.shrunk
        assert s is not None
        divergences(console, w.name, f"model {k.version}", k.name, s.divergences,
                    max_lines=8)
        how = "1-minimal" if s.minimal else f"maybe not minimal after {s.rounds} rounds"
        also = ""
        if same:
            names = ", ".join(x.name for x in same[:6]) + (" …" if len(same) > 6 else "")
            also = (f"; {len(same)} more walk" +
                    ("s shrink" if len(same) != 1 else " shrinks") + f" to it: {names}")
        console.print(f"  shrunk from {w.steps} to {len(s.keep)} steps ({how}){also}:",
                      style="dim", markup=False)
        for line in w.reproducer.splitlines():
            if not line.startswith("#"):
                console.print("    " + line, markup=False, soft_wrap=True)


def fuzz_table(console: Console, rep: FuzzReport) -> None:
    """``anonex fuzz``: one row per kernel."""
    table = Table(title="anonex fuzz", header_style="bold")
    for col in ("kernel", "Linux", "walks", "skipped", "agreeing", "diverging",
                "reproducers", "shrunk to (steps)", "time"):
        table.add_column(col, justify="left" if col in ("kernel", "Linux") else "right")
    for k in rep.kernels:
        if k.unavailable and not k.walks:
            table.add_row(k.name, "-", Text("not available", style="yellow"), "", "", "", "",
                          "", "")
            continue
        sizes = Counter(len(w.shrunk.keep) for w, _ in k.distinct() if w.shrunk is not None)
        shown = ", ".join(f"{n}" + (f" ×{m}" if m > 1 else "") for n, m in sorted(sizes.items()))
        boots = f", {k.boots} boot{'s' * (k.boots != 1)}" if k.boots else ""
        if k.diverging:
            boots += f" (shrinking {k.shrink_seconds:.0f} s)"
        n_div = len(k.diverging)
        table.add_row(k.name, str(k.version or "?"), str(len(k.walks)),
                      Text(str(k.count("skip")), style="yellow" if k.count("skip") else ""),
                      str(k.count("agree")),
                      Text(str(n_div), style="bold red" if n_div else "green"),
                      str(len(k.distinct())), shown or "-", f"{k.seconds:.0f} s{boots}")
    console.print(table)
    for k in rep.kernels:
        for why, n in k.skip_reasons().items():
            console.print(f"[yellow]skip[/] {n} walk{'s' * (n != 1)} on {escape(k.name)}: "
                          f"{escape(why)}")
        for note in k.notes:
            console.print(f"  note ({escape(k.name)}): {escape(note)}")
        if k.unavailable:
            console.print(f"[yellow]{escape(k.name)} not available[/]: {escape(k.unavailable)}")
