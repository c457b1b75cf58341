"""Every random stream of a run comes from splits of its run key, and all are distinct.

A run's key is split once into named streams (``rljax.run.loop.streams``); each is split again
where it is used. ``fold_in`` appears only at the top (run ``i``'s key from the seed), so no
stream can equal another one by the identity ``fold_in(k, i) == split(k, n)[i]``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rljax import envs
from rljax.agents import AGENTS
from rljax.run import experiment, loop


def _rows(*keys) -> np.ndarray:
    """Each key's raw data as one row (keys of any batch shape)."""
    return np.concatenate([np.asarray(jax.random.key_data(k)).reshape(-1, 2) for k in keys], axis=0)


def _derived(run_key, num_envs: int, num_steps: int, max_steps: int) -> dict:
    """Every key a gymnax run derives from its run key, one level below where it is used."""
    s = loop.streams(run_key)
    agent_key, net_key = jax.random.split(s.init)
    next_collect, update_key = jax.random.split(s.collect)
    step_keys = jax.random.split(update_key, num_steps)
    act_env = jax.vmap(jax.random.split)(step_keys)
    out = {
        "run": run_key,
        **s._asdict(),
        "agent": agent_key,
        "network": net_key,
        "env_reset": jax.random.split(s.env, num_envs),
        "next_collect": next_collect,
        "update": update_key,
        "steps": step_keys,
        "act_and_env_step": act_env,
    }
    for name in ("eval_greedy", "eval_sampled"):
        reset_key, play_key = jax.random.split(getattr(s, name))
        out[f"{name}_reset"] = reset_key
        out[f"{name}_steps"] = jax.random.split(play_key, max_steps)
    return out


def test_streams_are_distinct_by_value_across_runs():
    keys = experiment.run_keys(0, 4)
    derived = [_derived(k, num_envs=4, num_steps=8, max_steps=50) for k in keys]
    rows = _rows(*[v for d in derived for v in d.values()])
    assert len(np.unique(rows, axis=0)) == len(rows)


@pytest.mark.parametrize("env_name", ["CartPole-v1", "gymnasium:CartPole-v1"])
def test_the_runner_uses_the_named_streams(env_name):
    """Both env families: the agent's state comes from the init stream, collection from the
    collect stream, evaluation from the two evaluation streams."""
    agent = AGENTS["ppo"]
    spec = experiment.env_spec(env_name)
    config = experiment.build_config(agent, "default", {"total_steps": 1024}, spec)
    keys = experiment.run_keys(3, 2)
    runs = experiment.make_runs(agent, config, env_name, 2, 3, experiment.RunOptions())
    try:
        carry = runs.init()
        s = jax.vmap(loop.streams)(keys)
        want = jax.vmap(lambda k: agent.init(k, config, spec))(s.init)
        for a, b in zip(jax.tree.leaves(carry.agent), jax.tree.leaves(want), strict=True):
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(_rows(carry.key), _rows(s.collect))
        np.testing.assert_array_equal(_rows(runs.eval_streams()[0]), _rows(s.eval_greedy))
        np.testing.assert_array_equal(_rows(runs.eval_streams()[1]), _rows(s.eval_sampled))
    finally:
        runs.close()


def test_gymnax_reset_uses_the_env_stream():
    agent = AGENTS["a2c"]
    env, env_params = envs.make("CartPole-v1")
    spec = envs.spec(env, env_params)
    config = agent.config(num_envs=3)
    run_key = experiment.run_keys(0, 1)[0]
    carry = loop.init_fn(agent, config, spec, env, env_params)(run_key)
    _, obs = envs.reset(loop.streams(run_key).env, env, env_params, 3)
    np.testing.assert_array_equal(carry.obs, obs)
