"""No traceback on any input: mutants of the library's scenarios through every reader.

``python tools/fuzz_inputs.py [--count 20000] [--seed 1] [--versions 5.4,5.9,6.1,6.18]
[--commands 300] [--out DIR]``

Each mutant (:mod:`anonex.scenario.mutate`) is parsed; one that parses runs on the model at
every version (in a process pool); a ``model-error`` finding (an exception the model caught
inside itself) counts as a crash too. Then ``--commands`` of the mutants that parse go through
the command line as a user would run them, in this process: ``anonex check --no-live`` and
``anonex run``, and ``anonex live`` where the live kernel is available. Anything that is not
a scenario error (file:line:column) or a verdict counts as a crash; each distinct crash is
written to DIR with its traceback. Prints the counts as JSON; exit 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "src" / "anonex" / "library"


def _texts() -> list[str]:
    return [p.read_text() for p in sorted(LIBRARY.rglob("*.cow"))]


def _batch(args: tuple[int, int, int, list[str]]) -> tuple[Counter[str], list[tuple[str, str]],
                                                           list[str]]:
    """Mutants *first*..*first+n* of *seed*: counts, crashes (text, traceback), and the
    texts of some that parsed (for the command-line pass)."""
    from anonex.harness.model import ModelBackend
    from anonex.runner import run
    from anonex.scenario.errors import ScenarioError
    from anonex.scenario.mutate import mutant
    from anonex.scenario.parser import parse
    from anonex.versions import KernelVersion

    seed, first, n, versions = args
    texts = _texts()
    counts: Counter[str] = Counter()
    crashes: list[tuple[str, str]] = []
    parsed: list[str] = []
    for i in range(first, first + n):
        rng = random.Random(seed * 1_000_003 + i)
        text = mutant(rng.choice(texts), rng, texts)
        counts["mutants"] += 1
        try:
            scen = parse(text, f"mutant-{i}.cow")
        except ScenarioError:
            counts["scenario errors"] += 1
            continue
        except Exception:
            counts["crashes"] += 1
            crashes.append((text, traceback.format_exc()))
            continue
        counts["parsed"] += 1
        if len(parsed) < 50:
            parsed.append(text)
        for v in versions:
            try:
                t = run(scen, ModelBackend(KernelVersion.parse(v)))
            except Exception:
                counts["crashes"] += 1
                crashes.append((text, traceback.format_exc()))
                continue
            counts["model runs"] += 1
            counts[f"verdict {t.verdict}"] += 1
            errors = [f for r in t.steps for f in r.result.findings
                      if f.property == "model-error"]
            if errors:  # an exception inside the model: a bug of anonex, reported as such
                counts["model errors"] += 1
                crashes.append((text, errors[0].message))
    return counts, crashes, parsed


def _commands(texts: list[str], tmp: Path, live: bool) -> tuple[Counter[str],
                                                                 list[tuple[str, str]]]:
    from typer.testing import CliRunner

    from anonex.cli import app

    runner = CliRunner()
    counts: Counter[str] = Counter()
    crashes: list[tuple[str, str]] = []
    for i, text in enumerate(texts):
        f = tmp / f"cmd-{i}.cow"
        f.write_text(text)
        cmds = [["check", "--no-live", "-k", "5.4", "-k", "6.18", str(f)], ["run", str(f)]]
        if live:
            cmds.append(["live", str(f)])
        for cmd in cmds:
            r = runner.invoke(app, cmd)
            counts[f"anonex {cmd[0]}"] += 1
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                counts["crashes"] += 1
                tb = "".join(traceback.format_exception(r.exception))
                crashes.append((text, f"anonex {' '.join(cmd)}\n{tb}"))
            elif "Traceback" in r.output:
                counts["crashes"] += 1
                crashes.append((text, f"anonex {' '.join(cmd)}\n{r.output}"))
    return counts, crashes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--versions", default="5.4,5.9,6.1,6.18")
    ap.add_argument("--commands", type=int, default=300,
                    help="mutants that parse to run through the command line")
    ap.add_argument("--out", type=Path, default=Path("fuzz-inputs"))
    args = ap.parse_args()
    versions = [v.strip() for v in args.versions.split(",")]
    t0 = time.monotonic()
    step = 250
    jobs = [(args.seed, i, min(step, args.count - i), versions)
            for i in range(0, args.count, step)]
    total: Counter[str] = Counter()
    crashes: list[tuple[str, str]] = []
    parsed: list[str] = []
    with ProcessPoolExecutor() as pool:
        for counts, cr, ok in pool.map(_batch, jobs):
            total.update(counts)
            crashes += cr
            parsed += ok
    model_s = time.monotonic() - t0
    from anonex.live import available

    live, why = available()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    chosen = rng.sample(parsed, min(args.commands, len(parsed)))
    counts, cr = _commands(chosen, args.out, live)
    total.update(counts)
    crashes += cr
    seen: set[str] = set()
    for i, (text, tb) in enumerate(crashes):
        last = tb.strip().splitlines()[-1]
        if last in seen:
            continue
        seen.add(last)
        (args.out / f"crash-{i}.cow").write_text(text + "\n# " + tb.replace("\n", "\n# "))
    for f in args.out.glob("cmd-*.cow"):
        f.unlink()
    report = {**dict(sorted(total.items())), "distinct crashes": len(seen),
              "live": live or why, "seconds": round(time.monotonic() - t0, 1),
              "model seconds": round(model_s, 1)}
    json.dump(report, sys.stdout, indent=1)
    print()
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
