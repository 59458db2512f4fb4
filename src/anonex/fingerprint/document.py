"""A fingerprint as JSON, and back: what ``anonex fingerprint --json`` writes and
``anonex check --kernel FILE`` reads.

One document holds the fingerprints of every kernel of a run::

    {"anonex": "0.1.0", "fingerprints": [{"kernel": "debian:6.12", "version": "6.12.117",
      "release": "6.12.117+deb13-amd64", "observed": {"mthp": true, …},
      "differs": [...], "closest": "6.12", "results": [...], …}]}

``observed`` holds every rule the kernel showed; a model run from the document takes those
and the version table's answer for the rest (:func:`load`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonex import __version__
from anonex.fingerprint.judge import Fingerprint
from anonex.kernel.versions import BOUNDARIES, Rules
from anonex.versions import KernelVersion


def fingerprint_json(fp: Fingerprint) -> dict[str, Any]:
    """One kernel's fingerprint as a JSON object."""
    return {
        "kernel": fp.kernel,
        "version": str(fp.version),
        "release": fp.release,
        "seconds": round(fp.seconds, 1),
        "closest": str(fp.closest),
        "closest_misses": fp.closest_misses,
        "observed": fp.observed,
        "differs": [r.rule for r in fp.differing],
        "results": [{
            "rule": r.rule,
            "since": str(r.boundary.since),
            "until": None if r.boundary.until is None else str(r.boundary.until),
            "backports": [str(b) for b in r.boundary.backports],
            "expected": r.expected,
            "observed": r.observed,
            "mark": r.mark,
            "reason": r.reason,
            "readings": [{"scenario": x.scenario, "says": x.says, "detail": x.detail}
                         for x in r.readings],
        } for r in fp.results],
        "env": {k: v for k, v in fp.env.items() if _plain(v)},
    }


def _plain(v: object) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def document(fps: list[Fingerprint], not_run: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON document of a run: every fingerprint, and the kernels that could not run."""
    return {"anonex": __version__, "fingerprints": [fingerprint_json(f) for f in fps],
            "not_run": dict(not_run or {})}


class DocumentError(ValueError):
    """A fingerprint file that cannot be used; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class KernelRules:
    """A fingerprinted kernel, as the model needs it."""

    kernel: str
    version: KernelVersion
    release: str
    observed: tuple[tuple[str, bool], ...]

    @classmethod
    def of_version(cls, version: KernelVersion) -> KernelRules:
        """A version with the table's rules (no kernel read)."""
        return cls("", version, "", ())

    @classmethod
    def of(cls, fp: Fingerprint) -> KernelRules:
        return cls(fp.kernel, fp.version, fp.release, tuple(sorted(fp.observed.items())))

    def rules(self) -> Rules | None:
        """The rules to model with (``None``: the version's own)."""
        return Rules(self.version, dict(self.observed)) if self.kernel else None

    @property
    def label(self) -> str:
        """The model column's name: the version, or the kernel the rules were read from."""
        return f"fp:{self.kernel}" if self.kernel else str(self.version)

    def differs(self) -> list[str]:
        """The rules the kernel showed unlike its version's table row."""
        table = Rules(self.version)
        return [n for n, v in self.observed if getattr(table, n) != v]


def load(path: Path) -> list[KernelRules]:
    """The kernels of a fingerprint document, each with the rules it showed."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise DocumentError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DocumentError(f"{path}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from None
    fps = data.get("fingerprints") if isinstance(data, dict) else None
    if not isinstance(fps, list) or not fps:
        raise DocumentError(f"{path}: expected an anonex fingerprint document (a "
                            "'fingerprints' list, from anonex fingerprint --json)")
    known = {b.name for b in BOUNDARIES}
    out = []
    for i, fp in enumerate(fps):
        where = f"{path}: fingerprints[{i}]"
        try:
            version = KernelVersion.parse(str(fp["version"]))
            observed = fp["observed"]
            if not isinstance(observed, dict):
                raise TypeError("observed")
        except (KeyError, TypeError, ValueError) as e:
            raise DocumentError(f"{where}: missing or bad field {e}") from None
        unknown = sorted(set(observed) - known)
        if unknown:
            raise DocumentError(f"{where}: rules this anonex does not know: "
                                f"{', '.join(unknown)} (a fingerprint of another version?)")
        if not all(isinstance(v, bool) for v in observed.values()):
            raise DocumentError(f"{where}: 'observed' values must be true or false")
        out.append(KernelRules(str(fp.get("kernel", f"kernel{i}")), version,
                               str(fp.get("release", "")), tuple(sorted(observed.items()))))
    return out
