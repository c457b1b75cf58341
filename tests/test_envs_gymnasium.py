"""The Gymnasium host bridge records transitions that mean what the gymnax path's mean."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import chex
import gymnasium as gym
import jax
import numpy as np
import pytest

from rljax import envs, envs_gymnasium
from rljax.agents import a2c, ppo
from rljax.agents.common import ConfigError
from rljax.io import bridged
from rljax.rollout import rollout

CONFIG = a2c.A2CConfig(total_steps=4 * 8 * 3, num_envs=4, num_steps=8)


def _gymnax_traj(config, max_steps=None, num_steps=None):
    env, env_params = envs.make("CartPole-v1")
    if max_steps is not None:
        env_params = env_params.replace(max_steps_in_episode=max_steps)
    spec = envs.spec(env, env_params)
    state = a2c.init(jax.random.key(0), config, env, env_params)
    _, _, traj = jax.jit(rollout, static_argnums=(1, 3, 7))(
        jax.random.key(1),
        a2c.make_policy(config, spec),
        state.params,
        env,
        env_params,
        state.env_state,
        state.obs,
        num_steps or config.num_steps,
    )
    return spec, state, jax.device_get(traj)


def _bridged_traj(config, num_seeds=1, max_steps=None, num_steps=None, mode="sync"):
    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    vecs = [
        envs_gymnasium.make_vector("gymnasium:CartPole-v1", config.num_envs, 10 + s, mode, **kwargs)
        for s in range(num_seeds)
    ]
    host = envs_gymnasium.HostEnvs(vecs)
    spec = envs_gymnasium.spec(vecs[0])
    keys = jax.random.split(jax.random.key(0), num_seeds)
    state = jax.vmap(lambda k: bridged.BRIDGED["a2c"].init(k, config, spec))(keys)
    try:
        _, traj = envs_gymnasium.host_rollout(
            jax.random.split(jax.random.key(1), num_seeds),
            a2c.make_policy(config, spec),
            state.params,
            host,
            num_steps or config.num_steps,
        )
    finally:
        host.close()
    return spec, state, traj


def _check_semantics(traj):
    """DESIGN section 2 on one [T, N] trajectory (numpy)."""
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
    """A few A2C updates through learn_step on both paths: finite, same metric names."""
    spec, state, ref = _gymnax_traj(CONFIG)
    learn = jax.jit(lambda s, t: a2c.learn_step(s, t, CONFIG, spec))
    s1, m1 = learn(state, ref)
    bspec, bstate, traj = _bridged_traj(CONFIG, num_seeds=2)
    blearn = jax.jit(jax.vmap(lambda s, t: a2c.learn_step(s, t, CONFIG, bspec)))
    s2, m2 = blearn(bstate, traj)
    s2, m2 = blearn(s2, traj)
    assert set(m1) == set(m2)
    chex.assert_tree_all_finite((s1.params, s2.params))
    assert int(s2.update[0]) == 2


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
    state = jax.vmap(lambda k: bridged.BRIDGED["a2c"].init(k, config, spec))(
        jax.random.key(0)[None]
    )
    _, traj = envs_gymnasium.host_episodes(
        jax.random.key(1)[None], a2c.make_policy(config, spec), state.params, host, 40
    )
    host.close()
    done = traj.terminated | traj.truncated
    assert traj.obs.shape[1] == 40
    np.testing.assert_array_equal(done.sum(1), 1)  # exactly one episode end per env
    assert host.steps[0] == 3 * (np.argmax(done[0], 0).max() + 1)  # stopped when all ended
    _, m = jax.jit(jax.vmap(lambda s, t: a2c.learn_step(s, t, config, spec)))(state, traj)
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
    bad = tmp_path / "bad"
    argv = ["--agent", "reinforce", "--env", "gymnasium:CartPole-v1", "--out", str(bad)]
    assert train.main(argv) == 2
    assert train.main(["--env", "gymnasium:Nope-v0", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("train.py: error: --agent reinforce does not train on Gymnasium")
    assert err[-1].startswith("train.py: error: --env gymnasium:Nope-v0: not a registered")
    assert not bad.exists()


def test_ppo_learn_step_is_the_learning_half_of_update_step():
    """update_step = rollout + learn_step, bitwise, so both paths train with the same code."""
    env, env_params = envs.make("CartPole-v1")
    spec = envs.spec(env, env_params)
    config = ppo.PPOConfig(total_steps=4 * 16 * 2, num_steps=16)
    state = ppo.init(jax.random.key(0), config, env, env_params)
    ref, ref_m = jax.jit(lambda s: ppo.update_step(s, config, env, env_params))(state)

    def by_hand(s):
        key, roll_key, perm_key = jax.random.split(s.key, 3)
        policy, _ = ppo.make_policy(config, spec)
        env_state, obs, traj = rollout(
            roll_key, policy, s.params, env, env_params, s.env_state, s.obs, config.num_steps
        )
        s = s._replace(env_state=env_state, obs=obs, key=key)
        return ppo.learn_step(s, traj, config, spec, perm_key)

    got, got_m = jax.jit(by_hand)(state)
    chex.assert_trees_all_equal((ref, ref_m), (got, got_m))
    assert int(got.update) == 1 and int(got.env_steps) == 64


def test_ppo_bridged_continuous_actions_are_clipped_for_the_env_only():
    """Pendulum through the bridge: the transition keeps PPO's raw Gaussian sample (with its
    log-prob), the env receives it clipped to [-2, 2]; replaying the clipped actions in one
    Gymnasium env by hand gives the recorded observations and rewards."""
    config = ppo.PPOConfig(num_envs=2, num_steps=25, num_minibatches=2, init_log_std=1.5)
    vec = envs_gymnasium.make_vector("gymnasium:Pendulum-v1", 2, 7)
    host = envs_gymnasium.HostEnvs([vec])
    spec = envs_gymnasium.spec(vec)
    bridge = bridged.BRIDGED["ppo"]
    state = jax.vmap(lambda k: bridge.init(k, config, spec))(jax.random.key(0)[None])
    policy = bridge.make_policy(config, spec)
    try:
        _, traj = envs_gymnasium.host_rollout(
            jax.random.key(1)[None], policy, state.params, host, config.num_steps
        )
    finally:
        host.close()
    assert np.abs(traj.action).max() > 2.0  # raw samples outside the bounds are kept
    out = ppo.policy_distribution(
        ppo._network(config, spec)[0](jax.tree.map(lambda x: x[0], state.params), traj.obs[0])[0]
    )
    np.testing.assert_allclose(out.log_prob(traj.action[0]), traj.log_prob[0], rtol=1e-5)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=7)
    for t in range(config.num_steps):
        np.testing.assert_allclose(traj.obs[0, t, 0], obs, rtol=1e-6)
        obs, r, *_ = env.step(np.clip(traj.action[0, t, 0], -2.0, 2.0))
        np.testing.assert_allclose(traj.reward[0, t, 0], r, rtol=1e-5)
    learn = jax.jit(jax.vmap(lambda s, t: bridge.learn_step(s, t, config, spec)))
    new, metrics = learn(state, traj)
    chex.assert_tree_all_finite((new.params, metrics))
    assert int(new.update[0]) == 1 and not np.array_equal(new.key, state.key)


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
