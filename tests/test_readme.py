"""The README's library snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    section = README.read_text().split("## The library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_returns_snippet_runs_and_bootstraps_as_it_says():
    ns: dict = {}
    exec(_python_blocks()[0], ns)  # noqa: S102
    adv = np.asarray(ns["adv"])
    assert adv.shape == (5, 3) and np.isfinite(adv).all() and np.isfinite(float(ns["loss"]))
    # Env 0 terminated at step 2: no bootstrap there, so its advantage is the reward alone.
    assert adv[2, 0] == 1.0


def test_the_training_snippet_runs():
    code = _python_blocks()[1]
    code = code.replace("total_steps=300_000", "total_steps=256").replace("(0, 64)", "(0, 2)")
    ns: dict = {}
    exec(code, ns)  # noqa: S102
    leaves = [np.asarray(x) for x in jax.tree.leaves(ns["params"])]
    assert all(x.shape[0] == 2 and np.isfinite(x).all() for x in leaves)
