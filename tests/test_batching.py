"""map_runs: blocks of runs compute what one vmap over all runs computes."""

from __future__ import annotations

import bitwise
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs
from rljax.agents import a2c
from rljax.run import experiment, loop, parallel


def _reference(x, w):
    """numpy float64: one run's function, looped over runs."""
    return np.stack([np.tanh(xi @ wi).sum(0) for xi, wi in zip(x, w, strict=True)])


@pytest.mark.parametrize("block", [None, 1, 3, 4, 7, 10])
def test_blocks_match_a_numpy_loop(block):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5, 3)).astype(np.float32)
    w = rng.normal(size=(7, 3, 2)).astype(np.float32)
    fn = parallel.map_runs(lambda xi, wi: jnp.tanh(xi @ wi).sum(0), block)
    got = jax.jit(fn)(x, w)
    assert got.shape == (7, 2)
    np.testing.assert_allclose(got, _reference(x.astype(np.float64), w), rtol=1e-5, atol=1e-6)


def test_blocked_training_equals_one_vmap():
    """A2C: 5 runs in blocks of 2 (with a remainder) equal the same 5 runs in one vmap."""
    env, env_params = envs.make("CartPole-v1")
    train = loop.make_train(a2c.AGENT, a2c.A2CConfig(total_steps=64 * 20), env, env_params)
    keys = experiment.run_keys(0, 5)
    ref = jax.jit(jax.vmap(train))(keys)
    got = jax.jit(parallel.map_runs(train, 2))(keys)
    for a, b in zip(
        jax.tree.leaves(got[0].agent.params), jax.tree.leaves(ref[0].agent.params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[1]["episode_count"], ref[1]["episode_count"])


# XLA's default optimisation level: the fast suite compiles at level 0, where blocked and
# unblocked resets happen to round alike.
OPTIMISED = {**bitwise.FUSION_EMITTERS, "xla_backend_optimization_level": 3}


def test_a_run_starts_the_same_whatever_its_block():
    """The runner's init gives each run the bits it gets alone, with seed blocks of 8 among 16
    runs (a blocked lax.map rounds some CartPole reset states differently in the last bit)."""
    agent = a2c.AGENT
    spec = experiment.env_spec("CartPole-v1")
    config = experiment.build_config(agent, "default", {}, spec)
    opts = experiment.RunOptions(seed_block=8)
    runs = experiment.make_runs(agent, config, "CartPole-v1", 16, 0, opts)
    init = runs.init_fn().lower(runs.train_keys, runs.run_configs).compile(OPTIMISED)
    got = init(runs.train_keys, runs.run_configs)
    one = loop.init_fn(agent, config, spec, runs.env, runs.env_params)
    alone = jax.jit(one).lower(runs.train_keys[0]).compile(OPTIMISED)
    for i, key in enumerate(runs.train_keys):
        want = alone(key)
        for a, b in zip(
            jax.tree.leaves(got.env_state), jax.tree.leaves(want.env_state), strict=True
        ):
            np.testing.assert_array_equal(a[i], b)
        np.testing.assert_array_equal(got.obs[i], want.obs)
        for a, b in zip(
            jax.tree.leaves(got.agent.params), jax.tree.leaves(want.agent.params), strict=True
        ):
            np.testing.assert_array_equal(a[i], b)


def test_default_block_and_bad_block():
    assert parallel.default_block("cpu") == parallel.CPU_BLOCK
    assert parallel.default_block("gpu") is None
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="block must be a positive int"):
            parallel.map_runs(lambda x: x, bad)


SHARDED = """
from rljax.run import xla_cpu; xla_cpu.configure()
import jax, jax.numpy as jnp, numpy as np
from rljax.run import parallel
from rljax.run import loop
assert len(jax.devices()) == 2, jax.devices()
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 5, 3)).astype(np.float32)
w = rng.normal(size=(8, 3, 2)).astype(np.float32)
ref = np.stack([np.tanh(xi.astype(np.float64) @ wi).sum(0) for xi, wi in zip(x, w)])
sharding = parallel.run_sharding(2, 8)
for block in (None, 1, 3):
    fn = parallel.map_runs(lambda xi, wi: jnp.tanh(xi @ wi).sum(0), block, sharding)
    got = jax.jit(fn, in_shardings=sharding, out_shardings=sharding)(x, w)
    assert got.sharding.num_devices == 2 and got.shape == (8, 2)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
print("ok")
"""


def test_sharded_blocks_match_a_numpy_loop():
    """Two host devices (a fresh process), each mapping its 4 runs in blocks (3: a remainder)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=str(root), JAX_PLATFORMS="cpu", RLJAX_CPU_DEVICES="2")
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
