"""Layer 4: running experiments (the training loop, devices and processes, results, XLA:CPU).

Submodules load on first use, so ``import rljax.run`` is as light as ``import rljax``.
"""

import importlib as _importlib

_SUBMODULES = (
    "compile_cache",
    "experiment",
    "gymnax",
    "host",
    "loop",
    "parallel",
    "results",
    "xla_cpu",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"rljax.run.{name}")
    raise AttributeError(f"module 'rljax.run' has no attribute {name!r}")
