"""``--dot``: a run as a Graphviz picture.

One cluster per step, left to right: each process's virtual pages point at the physical
pages they map (labels p1, p2, … as in the trace). Exclusive anon pages are green, shared
or not-yet-exclusive ones orange, KSM pages violet, the zero page grey; a swapped page points
at a dashed "swap" node. Pins and pipes are not drawn; the step's title says what happened.
Render with ``dot -Tsvg run.dot > run.svg``.
"""

from __future__ import annotations

from anonex.observation import PageObs
from anonex.runner import Trace


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _page_style(o: PageObs) -> str:
    if o.zero:
        return 'fillcolor="#dddddd"'
    if o.ksm:
        return 'fillcolor="#d7b5f5"'
    if o.anon_exclusive:
        return 'fillcolor="#9fe29f"'
    if o.anon_exclusive is None:
        return 'fillcolor="#ffffff"'
    return 'fillcolor="#f9c784"'


def dot(t: Trace, max_pages: int = 16) -> str:
    """The DOT text for trace *t* (at most *max_pages* pages of a region per process)."""
    out = [f"digraph {_q(t.scenario.name)} {{", "  rankdir=LR; newrank=true;",
           '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];',
           f"  label={_q((t.scenario.title or t.scenario.name) + ' — ' + t.backend)};",
           "  labelloc=t;"]
    for n, rec in enumerate(t.steps):
        res = rec.result
        title = rec.step.text()
        if res.value is not None:
            title += f"  → {res.value!r}"
        if rec.outcome is not None:
            title += f"  [{rec.outcome}]"
        if res.finding or res.error:
            title += "  ⚠ " + (res.finding or res.error or "")[:80]
        out.append(f"  subgraph cluster_{n} {{")
        out.append(f'    a{n} [style=invis, shape=point, width=0];')
        out.append(f"    label={_q(f'{rec.step.pos.line}: {title}')}; fontsize=10;")
        pages: dict[str, PageObs] = {}
        for o in sorted(rec.obs.values(), key=lambda o: (o.proc, o.region, o.index)):
            if o.index >= max_pages:
                continue
            v = f"s{n}_{o.proc}_{o.region}_{o.index}"
            out.append(f'    {v} [label={_q(f"{o.proc} {o.region}[{o.index}]")}, '
                       'shape=plain, style=""];')
            if o.state == "present" and o.page is not None:
                pages.setdefault(o.page, o)
                out.append(f"    {v} -> s{n}_{o.page};")
            elif o.state == "swapped":
                out.append(f"    {v} -> s{n}_swap [style=dashed];")
        for label, o in pages.items():
            extra = " ksm" if o.ksm else ""
            text = f"{label}{extra}\\nmap={o.mapcount} {o.data!r}" if o.data is not None \
                else f"{label}{extra}\\nmap={o.mapcount}"
            out.append(f'    s{n}_{label} [label="{text}", {_page_style(o)}];')
        if any(o.state == "swapped" for o in rec.obs.values()):
            out.append(f'    s{n}_swap [label="swap", style=dashed];')
        if not rec.obs:
            out.append(f'    s{n}_empty [label="(nothing mapped)", shape=plain, style=""];')
        out.append("  }")
    # keep the steps in order, top to bottom
    out.extend(f"  a{n} -> a{n + 1} [style=invis];" for n in range(len(t.steps) - 1))
    out.append("}")
    return "\n".join(out) + "\n"
