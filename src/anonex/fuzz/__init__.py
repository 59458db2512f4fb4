"""``anonex fuzz``: differential random walks, model against real kernels, with shrinking.

* :mod:`.kernels` - the kernels walks run on: the running one, a booted one (one boot per
  batch), or any backend standing in for a kernel (tests)
* :mod:`.judge` - a batch on a kernel and on the model, each pair diffed
* :mod:`.shrink` - a diverging walk shrunk, in rounds of one batch, to a minimal scenario
  that diverges on the same fields
* :mod:`.core` - generation at each kernel's version, the whole run, the report
"""

from __future__ import annotations

from anonex.fuzz.core import (
    FuzzReport,
    KernelReport,
    NoProgress,
    Options,
    Progress,
    WalkResult,
    fuzz,
    fuzz_kernel,
    generate,
    reproducer_name,
)
from anonex.fuzz.judge import Outcome, evaluate, field_of, signature
from anonex.fuzz.kernels import BOOT_ROUNDS, BackendKernel, BootKernel, FuzzKernel, live_kernel
from anonex.fuzz.shrink import Shrunk

__all__ = ["BOOT_ROUNDS", "BackendKernel", "BootKernel", "FuzzKernel", "FuzzReport",
           "KernelReport", "NoProgress", "Options", "Outcome", "Progress", "Shrunk",
           "WalkResult", "evaluate", "field_of", "fuzz", "fuzz_kernel", "generate",
           "live_kernel", "reproducer_name", "signature"]
