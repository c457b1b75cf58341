"""The Gymnasium host bridge records transitions that mean what the gymnax path's mean."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import bitwise
import chex
import gymnasium as gym
import jax
import numpy as np
import pytest

from rljax import envs, envs_gymnasium, networks
from rljax.agents import ConfigError, a2c, ppo
from rljax.rollout import rollout
from rljax.run import loop

CONFIG = a2c.A2CConfig(total_steps=4 * 8 * 3, num_envs=4, num_steps=8)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _jit_rollout(step_keys, policy, env, env_params, agent_state, env_state, obs):
    act = lambda key, o: policy(key, agent_state, o)  # noqa: E731
    return rollout(step_keys, act, env, env_params, env_state, obs)


def _gymnax_traj(config, max_steps=None, num_steps=None):
    """A2C's behaviour policy for T steps on gymnax CartPole: ``(spec, carry, traj[T, N])``."""
    env, env_params = envs.make("CartPole-v1")
    if max_steps is not None:
        env_params = env_params.replace(max_steps_in_episode=max_steps)
    spec = envs.spec(env, env_params)
    carry = loop.init_fn(a2c.AGENT, config, spec, env, env_params)(jax.random.key(0))
    _, _, traj = _jit_rollout(
        jax.random.split(jax.random.key(1), num_steps or config.num_steps),
        a2c.make_policy(config, spec),
        env,
        env_params,
        carry.agent,
        carry.env_state,
        carry.obs,
    )
    return spec, carry, jax.device_get(traj)


def _bridged_traj(config, num_seeds=1, max_steps=None, num_steps=None, mode="sync"):
    """The same policy for T steps on Gymnasium CartPole: ``(spec, carry[S], traj[S, T, N])``."""
    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    vecs = [
        envs_gymnasium.make_vector("gymnasium:CartPole-v1", config.num_envs, 10 + s, mode, **kwargs)
        for s in range(num_seeds)
    ]
    host = envs_gymnasium.HostEnvs(vecs)
    spec = envs_gymnasium.spec(vecs[0])
    keys = jax.random.split(jax.random.key(0), num_seeds)
    carry = jax.vmap(loop.init_fn(a2c.AGENT, config, spec))(keys)
    try:
        _, traj = envs_gymnasium.host_rollout(
            jax.random.split(jax.random.key(1), num_seeds),
            a2c.make_policy(config, spec),
            carry.agent,
            host,
            num_steps or config.num_steps,
        )
    finally:
        host.close()
    return spec, carry, traj


def _check_semantics(traj):
    """docs/conventions.md on one [T, N] trajectory (numpy)."""
    done = traj.terminated | traj.truncated
    # next_obs is the true successor: the next step's obs except at episode ends, where the
    # next step starts a new episode from a reset observation.
    same = np.all(traj.next_obs[:-1] == traj.obs[1:], axis=-1)
    np.testing.assert_array_equal(same, ~done[:-1])
    # Episode bookkeeping: only at ends, equal to the sum of the episode's rewards.
    assert np.all(traj.episode_return[~done] == 0) and np.all(traj.episode_length[~done] == 0)
    t_len, n = done.shape
    for i in range(n):
        ends = np.flatnonzero(done[:, i])
        for a, b in zip(ends[:-1], ends[1:], strict=True):
            assert traj.episode_length[b, i] == b - a
            np.testing.assert_allclose(
                traj.episode_return[b, i], traj.reward[a + 1 : b + 1, i].sum()
            )


def test_transitions_have_the_same_structure():
    _, _, ref = _gymnax_traj(CONFIG)
    spec, _, got = _bridged_traj(CONFIG, num_seeds=2)
    assert spec == envs.spec(*envs.make("CartPole-v1"))  # shapes, limit, threshold
    assert got._fields == ref._fields
    for name in ref._fields:
        r, g = np.asarray(getattr(ref, name)), np.asarray(getattr(got, name))
        assert g.shape == (2, *r.shape), name  # [S, T, N, ...] against [T, N, ...]
        assert g.dtype == r.dtype, (name, g.dtype, r.dtype)


@pytest.mark.parametrize("path", ["gymnax", "gymnasium"])
def test_truncation_is_not_termination(path):
    """With a 20-step time limit both paths truncate (terminated False) and bootstrap from
    the final observation; random CartPole policies also terminate before the limit."""
    config = a2c.A2CConfig(num_envs=8, num_steps=60)
    if path == "gymnax":
        _, _, traj = _gymnax_traj(config, max_steps=20)
    else:
        _, _, traj = _bridged_traj(config, max_steps=20)
        traj = jax.tree.map(lambda x: x[0], traj)
    # Both flags can be set when the pole falls exactly at the limit; most cuts are not falls.
    assert (traj.truncated & ~traj.terminated).any() and (traj.terminated & ~traj.truncated).any()
    np.testing.assert_array_equal(traj.episode_length[traj.truncated], 20)
    assert np.all(traj.episode_length[traj.terminated & ~traj.truncated] < 20)
    _check_semantics(traj)


def test_final_observation_is_the_real_last_one():
    """Replaying env 0 by hand gives the same observations, final ones included."""
    config = a2c.A2CConfig(num_envs=2, num_steps=30)
    _, _, traj = _bridged_traj(config, max_steps=10)
    env = gym.make("CartPole-v1", max_episode_steps=10)
    obs, _ = env.reset(seed=10)
    for t in range(30):
        np.testing.assert_array_equal(traj.obs[0, t, 0], obs)
        nxt, r, term, trunc, _ = env.step(int(traj.action[0, t, 0]))
        np.testing.assert_array_equal(traj.next_obs[0, t, 0], nxt)
        assert (traj.terminated[0, t, 0], traj.truncated[0, t, 0]) == (term, trunc)
        assert traj.reward[0, t, 0] == r
        obs = env.reset()[0] if term or trunc else nxt
    assert traj.truncated[0, :, 0].any()


def test_same_agent_learns_on_both_paths():
    """A few A2C updates through learn_step (and the runner's bookkeeping, loop.learn_fn) on
    both paths: finite, same metric names."""
    spec, carry, ref = _gymnax_traj(CONFIG)
    learn = jax.jit(loop.learn_fn(a2c.AGENT, CONFIG, spec))
    c1, m1 = learn(carry, ref)
    bspec, bcarry, traj = _bridged_traj(CONFIG, num_seeds=2)
    blearn = jax.jit(jax.vmap(loop.learn_fn(a2c.AGENT, CONFIG, bspec)))
    c2, m2 = blearn(bcarry, traj)
    c2, m2 = blearn(c2, traj)
    assert set(m1) == set(m2)
    chex.assert_tree_all_finite((c1.agent.params, c2.agent.params))
    assert int(c2.agent.update[0]) == 2


def test_sync_and_async_record_the_same_transitions():
    config = a2c.A2CConfig(num_envs=2, num_steps=12)
    _, _, sync = _bridged_traj(config, max_steps=5)
    _, _, asyn = _bridged_traj(config, max_steps=5, mode="async")
    for a, b in zip(sync, asyn, strict=True):
        np.testing.assert_array_equal(a, b)


def test_monte_carlo_episodes_are_masked_like_gymnax():
    config = a2c.A2CConfig(mode="monte_carlo", num_envs=3)
    vec = envs_gymnasium.make_vector("CartPole-v1", 3, 0, max_episode_steps=40)
    host = envs_gymnasium.HostEnvs([vec])
    spec = envs_gymnasium.spec(vec)
    carry = jax.vmap(loop.init_fn(a2c.AGENT, config, spec))(jax.random.key(0)[None])
    assert a2c.AGENT.collection(config, spec) == (3, 40, True)  # one episode of <= 40 steps
    _, traj = envs_gymnasium.host_episodes(
        jax.random.key(1)[None], a2c.make_policy(config, spec), carry.agent, host, 40
    )
    host.close()
    done = traj.terminated | traj.truncated
    assert traj.obs.shape[1] == 40
    np.testing.assert_array_equal(done.sum(1), 1)  # exactly one episode end per env
    assert host.steps[0] == 3 * (np.argmax(done[0], 0).max() + 1)  # stopped when all ended
    _, m = jax.jit(jax.vmap(loop.learn_fn(a2c.AGENT, config, spec)))(carry, traj)
    assert int(m["episode_count"][0]) == 3


@pytest.mark.parametrize(
    "name, match",
    [
        ("gymnasium:Nope-v0", "not a registered Gymnasium environment"),
        ("gymnasium:FrozenLake-v1", "observation space Discrete"),
        ("gymnasium:Blackjack-v1", "observation space Tuple"),
    ],
)
def test_bad_env_is_one_line(name, match):
    with pytest.raises(ConfigError, match=match) as e:
        envs_gymnasium.spec(name)
    assert "\n" not in str(e.value)


def test_missing_box2d_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "Box2D", None)  # import Box2D now fails
    monkeypatch.delitem(sys.modules, "gymnasium.envs.box2d.lunar_lander", raising=False)
    monkeypatch.delitem(sys.modules, "gymnasium.envs.box2d", raising=False)
    with pytest.raises(ConfigError) as e:
        envs_gymnasium.spec("gymnasium:LunarLander-v3")
    assert str(e.value) == 'LunarLander needs the gymnasium extra: pip install -e ".[gymnasium]"'


def test_lunar_lander_spec():
    pytest.importorskip("Box2D")
    spec = envs_gymnasium.spec("gymnasium:LunarLander-v3")
    assert (spec.obs_shape, spec.discrete, spec.num_actions) == ((8,), True, 4)
    assert (spec.max_steps, spec.solved_threshold) == (1000, 200.0)


def test_cli_trains_on_a_bridged_env(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--env", "gymnasium:CartPole-v1", "--num-seeds", "2", "--total-steps", "256"]
    argv += ["--num-envs", "4", "--num-chunks", "2", "--eval-episodes", "3", "--quiet"]
    assert train.main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps_learned"] == summary["env_steps_simulated"] == [256, 256]
    assert len(summary["eval_returns"]) == 2
    for name in ("config.json", "metrics.csv", "curves.png"):
        assert (out / name).exists()
    # Every agent trains through the bridge now: REINFORCE (once refused) runs too.
    out = tmp_path / "reinforce"
    argv = ["--agent", "reinforce", "--env", "gymnasium:CartPole-v1", "--num-seeds", "2"]
    argv += ["--total-steps", "256", "--num-envs", "4", "--num-steps", "32"]
    argv += ["--num-chunks", "2", "--eval-episodes", "2", "--quiet", "--out", str(out)]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "reinforce" and summary["env_steps_learned"] == [256, 256]
    bad = tmp_path / "bad"
    assert train.main(["--env", "gymnasium:Nope-v0", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: --env gymnasium:Nope-v0: not a registered")
    assert not bad.exists()


def test_ppo_learn_step_is_the_learning_half_of_update_step():
    """The gymnax update = rollout + learn_step (+ the runner's counters), bitwise, so both
    paths train with the same code: the bridge calls the same learn_step on its batches."""
    env, env_params = envs.make("CartPole-v1")
    spec = envs.spec(env, env_params)
    config = ppo.PPOConfig(total_steps=4 * 16 * 2, num_steps=16)
    carry = loop.init_fn(ppo.AGENT, config, spec, env, env_params)(jax.random.key(0))
    update = loop.update_fn(ppo.AGENT, config, spec, env, env_params, False)
    ref, ref_m = bitwise.jit(update)(carry)

    def by_hand(c):
        key, roll_key = jax.random.split(c.key)  # the runner's collection stream
        policy = ppo.make_policy(config, spec)
        env_state, obs, traj = rollout(
            jax.random.split(roll_key, config.num_steps),
            lambda key, o: policy(key, c.agent, o),
            env,
            env_params,
            c.env_state,
            c.obs,
        )
        state, metrics = ppo.learn_step(c.agent, traj, config, spec)
        return state, key, env_state, obs, metrics

    got, key, env_state, obs, got_m = bitwise.jit(by_hand)(carry)
    assert int(got.update) == 0 and int(got.env_steps) == 0  # the runner counts, not learn_step
    chex.assert_trees_all_equal(
        (ref.agent, ref.key, ref.env_state, ref.obs),
        (got._replace(update=got.update + 1, env_steps=got.env_steps + 64), key, env_state, obs),
    )
    chex.assert_trees_all_equal({k: ref_m[k] for k in got_m}, got_m)
    assert int(ref.agent.update) == 1 and int(ref.agent.env_steps) == 64


def test_ppo_bridged_continuous_actions_are_clipped_for_the_env_only():
    """Pendulum through the bridge: the transition keeps PPO's raw Gaussian sample (with its
    log-prob), the env receives it clipped to [-2, 2]; replaying the clipped actions in one
    Gymnasium env by hand gives the recorded observations and rewards."""
    config = ppo.PPOConfig(num_envs=2, num_steps=25, num_minibatches=2, init_log_std=1.5)
    vec = envs_gymnasium.make_vector("gymnasium:Pendulum-v1", 2, 7)
    host = envs_gymnasium.HostEnvs([vec])
    spec = envs_gymnasium.spec(vec)
    bridge = ppo.AGENT  # the same agent record on both paths
    carry = jax.vmap(loop.init_fn(bridge, config, spec))(jax.random.key(0)[None])
    state = carry.agent
    policy = bridge.make_policy(config, spec, False)
    try:
        _, traj = envs_gymnasium.host_rollout(
            jax.random.key(1)[None], policy, state, host, config.num_steps
        )
    finally:
        host.close()
    assert np.abs(traj.action).max() > 2.0  # raw samples outside the bounds are kept
    out = networks.policy_distribution(
        ppo._network(config, spec)[0](jax.tree.map(lambda x: x[0], state.params), traj.obs[0])[0]
    )
    np.testing.assert_allclose(out.log_prob(traj.action[0]), traj.log_prob[0], rtol=1e-5)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=7)
    for t in range(config.num_steps):
        np.testing.assert_allclose(traj.obs[0, t, 0], obs, rtol=1e-6)
        obs, r, *_ = env.step(np.clip(traj.action[0, t, 0], -2.0, 2.0))
        np.testing.assert_allclose(traj.reward[0, t, 0], r, rtol=1e-5)
    learn = jax.jit(jax.vmap(loop.learn_fn(bridge, config, spec)))
    new, metrics = learn(carry, traj)
    new = new.agent
    chex.assert_tree_all_finite((new.params, metrics))
    key_data = jax.random.key_data
    assert int(new.update[0]) == 1
    assert not np.array_equal(key_data(new.key), key_data(state.key))


def test_cli_trains_ppo_on_a_bridged_env(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--agent", "ppo", "--env", "gymnasium:CartPole-v1", "--num-seeds", "2"]
    argv += ["--total-steps", "512", "--num-envs", "2", "--num-steps", "64", "--num-chunks", "2"]
    argv += ["--eval-episodes", "2", "--quiet", "--out", str(out)]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "ppo" and summary["env_steps_learned"] == [512, 512]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + chunks x seeds


def test_cli_monte_carlo_bridged_run_writes_curves(tmp_path):
    """Keras preset on the bridge: each update is one episode per seed, so the seeds' env
    steps differ at the same update; the curves still plot and the running reward is kept."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--preset", "keras", "--env", "gymnasium:CartPole-v1", "--num-seeds", "2"]
    argv += ["--total-steps", "3000", "--num-chunks", "3", "--eval-episodes", "2"]
    argv += ["--running-threshold", "10", "--quiet", "--out", str(out)]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    learned = summary["env_steps_learned"]
    assert learned[0] != learned[1]  # one episode per update each, of different lengths
    assert (out / "curves.png").exists()
    assert set(summary["running_reward_passed_at"]) == {"10.0", "475.0"}
