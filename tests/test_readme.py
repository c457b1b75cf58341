"""The README's library snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(heading: str = "## The library") -> list[str]:
    section = README.read_text().split(f"{heading}\n", 1)[1].split("\n## ", 1)[0]
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


def test_the_use_it_as_a_library_example_runs_on_a_real_rollout():
    (code,) = _python_blocks("## Use it as a library")
    ns: dict = {}
    exec(code, ns)  # noqa: S102
    assert np.asarray(ns["r_t"]).shape == (32, 4)  # time-major [T, N]
    assert np.isfinite(float(ns["loss"]))
    grads = ns["grads"]
    for part in ("actor", "critic"):  # both networks get a gradient
        leaves = [np.asarray(x) for x in jax.tree.leaves(grads[part])]
        assert all(np.isfinite(x).all() for x in leaves)
        assert sum(float(np.abs(x).sum()) for x in leaves) > 0
    # The rollout crossed episode ends (CartPole under a near-uniform policy), and there the
    # snippet's s_t (bootstrapped from) is the final observation, not the next episode's first.
    done = np.asarray(ns["term_t"]) | np.asarray(ns["trunc_t"])
    s_tm1, s_t = np.asarray(ns["s_tm1"]), np.asarray(ns["s_t"])
    same = (s_t[:-1] == s_tm1[1:]).all(-1)  # s_t is the next step's s_tm1 ...
    assert done[:-1].any() and (same == ~done[:-1]).all()  # ... except at an episode end
