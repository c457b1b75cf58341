"""Observation normalisation and reward scaling (rljax.agents.normalize), for every agent."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs
from rljax.agents import AGENTS, normalize, off_policy
from rljax.run import loop

PENDULUM = envs.make("Pendulum-v1")
CARTPOLE = envs.make("CartPole-v1")


def np_stats(x):
    """Mean and variance of the prior (mean 0, var 1, count 1e-4) pooled with ``x`` [B, ...],
    in float64."""
    x = np.asarray(x, np.float64)
    n, c = x.shape[0], 1e-4
    m, v = x.mean(0), x.var(0)
    return n * m / (n + c), (c + n * v + m**2 * c * n / (n + c)) / (n + c)


def test_running_stats_match_numpy_over_batches():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    stats = normalize.stats_init((4,))
    for chunk in np.split(x, [7, 20, 21]):
        stats = normalize.stats_update(stats, jnp.asarray(chunk))
    # The prior (count 1e-4, mean 0, var 1) weighs 1e-4 of one sample.
    mean, var = np_stats(x)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(stats.var, var, rtol=1e-5)
    np.testing.assert_allclose(stats.count, 50.0001, rtol=1e-6)
    z = normalize.normalize(stats, jnp.asarray(x))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)
    big = normalize.normalize(stats, jnp.full((1, 4), 1e6))
    np.testing.assert_array_equal(big, 10.0)  # clipped


def test_every_agent_has_the_options_off_by_default_and_unchanged_state():
    for name, agent in AGENTS.items():
        config = agent.config()
        assert (config.normalize_obs, config.scale_rewards) == (False, False), name
    a2c = AGENTS["a2c"]
    spec = envs.spec(*CARTPOLE)
    state = a2c.init(jax.random.key(0), a2c.config(), spec)
    assert not isinstance(state, normalize.NormState)


def _carries(agent, config, env, n=2):
    spec = envs.spec(*env)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n))
    return spec, jax.vmap(loop.init_fn(agent, config, spec, *env))(keys)


@pytest.mark.parametrize("name", ["ppo", "sac"])
def test_stats_follow_the_collected_observations_and_are_used_everywhere(name):
    agent = AGENTS[name]
    env = CARTPOLE if name == "ppo" else PENDULUM
    tiny = dict(num_envs=2, num_steps=8, num_minibatches=2, total_steps=64, hidden_size=8)
    if name == "sac":
        tiny = dict(total_steps=64, buffer_size=64, batch_size=4, learning_starts=4, hidden_size=8)
    config = agent.config(**tiny, normalize_obs=True, scale_rewards=True)
    spec, carries = _carries(agent, config, env)
    assert isinstance(carries.agent, normalize.NormState)
    seen = []
    update = jax.jit(jax.vmap(loop.update_fn(agent, config, spec, *env, False)))
    collect = jax.jit(jax.vmap(loop.collect_fn(agent, config, spec, *env, False)))
    for _ in range(3):
        seen.append(np.asarray(collect(carries)[-1].obs))  # what the next update collects
        carries, metrics = update(carries)
    obs = np.concatenate([x.reshape(2, -1, *spec.obs_shape) for x in seen], axis=1)
    stats = carries.agent.obs_stats
    for s in range(2):  # per seed, vs numpy over every observation collected
        mean, var = np_stats(obs[s])
        np.testing.assert_allclose(stats.mean[s], mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats.var[s], var, rtol=1e-4, atol=1e-7)
    assert np.isfinite(np.asarray(metrics[next(iter(metrics))])).all()
    # The same normalisation at collection and at evaluation: the behaviour policy on raw
    # observations equals the inner policy on normalised ones, and act does the same.
    one = jax.tree.map(lambda x: x[0], carries.agent)
    o = jnp.asarray(obs[0, :5])
    z = normalize.normalize(one.obs_stats, o)
    key = jax.random.key(3)
    inner_state = one.inner._replace(update=one.update, env_steps=one.env_steps)
    policy = agent.make_policy(config, spec)
    a_wrapped, _ = policy(key, one, o)
    act = agent.make_act(config, spec)
    greedy = act(key, agent.params(one), o, True)
    assert isinstance(agent.params(one), normalize.NormParams)
    p = agent.params(one).params
    raw_act = _unwrapped(name).make_act(config, spec)
    np.testing.assert_array_equal(greedy, raw_act(key, p, z, True))
    raw_policy = _unwrapped(name).make_policy(config, spec)
    np.testing.assert_array_equal(a_wrapped, raw_policy(key, inner_state, z)[0])


def _unwrapped(name):
    """The agent's own functions, without the normalisation wrapper."""
    import importlib

    module = importlib.import_module(f"rljax.agents.{name}")
    return module


def test_replay_keeps_raw_observations_and_samples_are_normalised():
    agent = AGENTS["sac"]
    config = agent.config(
        total_steps=64, buffer_size=64, batch_size=4, learning_starts=4, hidden_size=8,
        normalize_obs=True,
    )  # fmt: skip
    spec, carries = _carries(agent, config, PENDULUM)
    collect = jax.jit(jax.vmap(loop.collect_fn(agent, config, spec, *PENDULUM, True)))
    traj = collect(carries)[-1]
    learn = jax.jit(jax.vmap(loop.learn_fn(agent, config, spec, warmup=True)))
    carries, _ = learn(carries, traj)
    stored = np.asarray(carries.agent.inner.replay.data.obs[:, 0])
    np.testing.assert_array_equal(stored, np.asarray(traj.obs[:, 0, 0]))  # raw
    assert carries.agent.inner.obs_stats is None  # the stats live once, in the wrapper
    state = jax.tree.map(lambda x: x[0], carries.agent)
    inner = state.inner._replace(obs_stats=state.obs_stats)
    batch = off_policy.sample(jax.random.key(1), config, inner)
    plain = off_policy.buffer(config).sample(jax.random.key(1), inner.replay)
    chex.assert_trees_all_close(batch.obs, normalize.normalize(state.obs_stats, plain.obs))


def test_reward_scaling_divides_by_the_return_std_and_logs_stay_raw():
    agent = AGENTS["ppo"]
    config = agent.config(num_envs=2, num_steps=8, num_minibatches=2, total_steps=64,
                          hidden_size=8, scale_rewards=True)  # fmt: skip
    spec, carries = _carries(agent, config, CARTPOLE, n=1)
    collect = jax.vmap(loop.collect_fn(agent, config, spec, *CARTPOLE, False))
    traj = jax.tree.map(lambda x: x[0], collect(carries)[-1])
    state = jax.tree.map(lambda x: x[0], carries.agent)
    scaled, new = normalize.scale_rewards(state, traj, config.gamma)
    r, done = np.asarray(traj.reward), np.asarray(traj.done)
    ret, seen = np.zeros(2), []
    for t in range(r.shape[0]):
        ret = ret * config.gamma + r[t]
        seen.append(ret.copy())
        ret = np.where(done[t], 0.0, ret)
    seen = np.stack(seen).reshape(-1)
    var = (
        seen.var() * seen.size
        + 1e-4 * 1.0
        + seen.mean() ** 2 * 1e-4 * seen.size / (seen.size + 1e-4)
    ) / (seen.size + 1e-4)  # noqa: E501
    np.testing.assert_allclose(scaled, r / np.sqrt(var + 1e-8), rtol=1e-4)
    np.testing.assert_allclose(new.returns, ret, rtol=1e-6)
    # The episode returns the runner logs are computed by the env wrapper from raw rewards.
    update = jax.jit(jax.vmap(loop.update_fn(agent, config, spec, *CARTPOLE, False)))
    _, metrics = update(carries)
    done_count = int(metrics["episode_count"][0])
    if done_count:
        assert float(metrics["episode_return_sum"][0]) >= done_count  # CartPole: r = 1 a step


def test_resume_restores_the_statistics_bitwise(tmp_path):
    """A normalised SAC run resumed from its previous checkpoint (the newest one removed, as
    if killed before it) ends bit for bit as the uninterrupted run, statistics included."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from rljax.io import checkpoint

    root = Path(__file__).resolve().parents[1]
    train = [sys.executable, str(root / "experiments" / "train.py")]
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu", "RLJAX_CPU_DEVICES": "1"}
    args = ["--agent", "sac", "--env", "Pendulum-v1", "--num-seeds", "2", "--total-steps", "96",
            "--learning-starts", "24", "--batch-size", "16", "--hidden-size", "8",
            "--normalize-obs", "--num-chunks", "4", "--checkpoint-every", "1", "--quiet",
            "--eval-episodes", "1"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    done = subprocess.run([*train, *args, "--out", str(a)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shutil.copytree(a, b)
    last = checkpoint.latest_step(b / "checkpoints")
    shutil.rmtree(b / "checkpoints" / str(last))
    (b / "summary.json").unlink()
    resumed = subprocess.run(
        [*train, "--resume", str(b), "--quiet"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    ja = json.loads((a / "summary.json").read_text())
    jb = json.loads((b / "summary.json").read_text())
    assert ja["eval_returns"] == jb["eval_returns"]
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    sa = _restore(a)
    sb = _restore(b)
    assert isinstance(sa.agent, normalize.NormState)
    np.testing.assert_allclose(np.asarray(sa.agent.obs_stats.count), 96.0, rtol=1e-5)
    for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _restore(out):
    import json

    from rljax.io import checkpoint
    from rljax.run import experiment

    cfg = json.loads((out / "config.json").read_text())
    agent = AGENTS[cfg["agent"]]
    env, env_params = envs.make(cfg["env"])
    config = agent.config(**cfg["config"])
    spec = envs.spec(env, env_params)
    keys = experiment.run_keys(cfg["seed"], cfg["num_seeds"])
    init = jax.vmap(loop.init_fn(agent, config, spec, env, env_params))
    mngr = checkpoint.manager(out / "checkpoints")
    state, _ = checkpoint.restore(mngr, mngr.latest_step(), jax.eval_shape(init, keys))
    mngr.close()
    return state
