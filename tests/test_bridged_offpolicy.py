"""DDPG and TD3 on Gymnasium envs through the host bridge: the same learning code as gymnax."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, envs_gymnasium
from rljax.agents import ddpg, td3
from rljax.io import bridged
from rljax.rollout import rollout

ENV, ENV_PARAMS = envs.make("Pendulum-v1")
SPEC = envs.spec(ENV, ENV_PARAMS)
TINY = dict(
    total_steps=64, buffer_size=64, batch_size=8, learning_starts=8, hidden_size=8, num_layers=1
)
CONFIGS = {
    "ddpg": ddpg.DDPGConfig(**TINY, num_envs=2),
    # policy_delay 2, and σ decaying with every env step (the policy reads it from its params).
    "td3": td3.TD3Config(**TINY, num_envs=2, exploration="epsilon_decay", exploration_noise=0.5),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_update_step_is_rollout_plus_learn_step(name):
    """update_step = policy_delay one-step rollouts with make_policy + learn_step, bitwise, in
    a warm-up update and in a learning update."""
    config = CONFIGS[name]
    n_warm = config.warmup_updates(SPEC)
    assert n_warm >= 1 and (name != "td3" or config.policy_delay == 2)
    step = jax.jit(lambda s: ddpg.update_step(s, config, ENV, ENV_PARAMS))
    policy = ddpg.make_policy(config, SPEC)

    def by_hand(s):
        _, act_keys, _, _ = ddpg.split_update_key(s.key, config)
        env_state, obs, steps = s.env_state, s.obs, []
        for j, act_key in enumerate(act_keys):
            params = ddpg.exploration_params(s)._replace(
                env_steps=s.env_steps + j * config.num_envs
            )
            env_state, obs, traj = rollout(
                act_key, policy, params, ENV, ENV_PARAMS, env_state, obs, 1
            )
            steps.append(traj)
        traj = jax.tree.map(lambda *x: jnp.concatenate(x), *steps)
        return ddpg.learn_step(s._replace(env_state=env_state, obs=obs), traj, config, SPEC)

    by_hand = jax.jit(by_hand)
    state = ddpg.init(jax.random.key(0), config, ENV, ENV_PARAMS)
    for u in range(n_warm + 2):
        ref, ref_m = step(state)
        got, got_m = by_hand(state)
        chex.assert_trees_all_equal((ref, ref_m), (got, got_m))
        learning = u >= n_warm
        assert (int(got.actor_opt_state[0].count) > 0) == learning
        assert (float(got_m["critic_loss"]) != 0.0) == learning
        state = ref
    assert int(state.env_steps) == (n_warm + 2) * config.steps_per_update(SPEC)


def _bridged_run(config, num_updates, num_seeds=2, max_steps=None, seed=7):
    """``num_updates`` bridged updates on Pendulum: (spec, initial state, final state, trajs)."""
    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    name = "gymnasium:Pendulum-v1"
    vecs = [
        envs_gymnasium.make_vector(name, config.num_envs, seed + 100 * s, **kwargs)
        for s in range(num_seeds)
    ]
    host = envs_gymnasium.HostEnvs(vecs)
    spec = envs_gymnasium.spec(vecs[0])
    bridge = bridged.BRIDGED[config.agent_name]
    state0 = jax.jit(jax.vmap(lambda k: bridge.init(k, config, spec)))(
        jax.random.split(jax.random.key(0), num_seeds)
    )
    policy = bridge.make_policy(config, spec)
    learn = jax.jit(jax.vmap(lambda s, t: bridge.learn_step(s, t, config, spec)))
    keys = jax.random.split(jax.random.key(1), num_seeds)
    state, trajs, metrics = state0, [], []
    try:
        for _ in range(num_updates):
            keys, traj = envs_gymnasium.host_rollout(
                keys, policy, bridge.policy_params(state), host, bridge.rollout_length(config)
            )
            state, m = learn(state, traj)
            trajs.append(traj)
            metrics.append(m)
    finally:
        host.close()
    traj = jax.tree.map(lambda *x: np.concatenate(x, axis=1), *trajs)  # [S, U·T, N]
    return spec, state0, state, traj, metrics


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bridged_pendulum_learns_finite_and_fills_replay(name):
    config = CONFIGS[name]
    spec = envs_gymnasium.spec("gymnasium:Pendulum-v1")
    n_warm = config.warmup_updates(spec)
    u = n_warm + 3
    _, state0, state, traj, metrics = _bridged_run(config, u)
    per_update = config.steps_per_update(spec)
    np.testing.assert_array_equal(state.replay.size, [u * per_update] * 2)
    np.testing.assert_array_equal(state.env_steps, [u * per_update] * 2)
    np.testing.assert_array_equal(state.update, [u] * 2)
    chex.assert_tree_all_finite((state.actor_params, state.critic_params, metrics))
    assert np.all(np.abs(traj.action) <= 2.0)
    # Warm-up acts uniformly (actions spread over the bounds); learning moves the actor.
    warm = traj.action[:, : n_warm * config.policy_delay]
    assert warm.max() > 1.0 and warm.min() < -1.0
    assert all(float(m["critic_loss"][0]) == 0.0 for m in metrics[:n_warm])
    assert all(float(m["critic_loss"][0]) != 0.0 for m in metrics[n_warm:])
    assert state.env_state is None  # the envs live on the host
    for a, b in zip(
        jax.tree.leaves(state0.actor_params), jax.tree.leaves(state.actor_params), strict=True
    ):
        assert not np.array_equal(a, b)
    # The replay holds the steps in order (time, then env), as the host recorded them.
    d = state.replay.data
    flat = lambda x: x.reshape(x.shape[0], -1, *x.shape[3:])  # [S, T·N, ...]
    k = u * per_update
    np.testing.assert_array_equal(d.obs[:, :k], flat(traj.obs))
    np.testing.assert_array_equal(d.action[:, :k], flat(traj.action))
    np.testing.assert_array_equal(d.next_obs[:, :k], flat(traj.next_obs))


def test_bridged_replay_keeps_the_final_observation_at_truncation():
    """Pendulum truncated at 5 steps: the stored next_obs at the time limit is the real final
    observation (replayed by hand in one Gymnasium env), not the reset one; never terminal."""
    config = CONFIGS["td3"]
    _, _, state, traj, _ = _bridged_run(config, 4, num_seeds=1, max_steps=5, seed=11)
    d = jax.tree.map(lambda x: np.asarray(x[0]), state.replay.data)
    n = config.num_envs
    assert int(state.replay.size[0]) == 8 * n
    assert not d.terminated[: 8 * n].any()
    np.testing.assert_array_equal(traj.truncated[0, :, 0], [0, 0, 0, 0, 1, 0, 0, 0])
    env = gym.make("Pendulum-v1", max_episode_steps=5)
    obs, _ = env.reset(seed=11)  # the vector env's first sub-env
    for t in range(5):
        np.testing.assert_allclose(d.obs[t * n], obs, rtol=1e-6)
        obs, _, terminated, truncated, _ = env.step(np.clip(d.action[t * n], -2.0, 2.0))
        np.testing.assert_allclose(d.next_obs[t * n], obs, rtol=1e-6)
    assert truncated and not terminated
    assert not np.allclose(d.next_obs[4 * n], d.obs[5 * n])  # the next item starts afresh
    np.testing.assert_array_equal(d.next_obs[3 * n], d.obs[4 * n])  # inside the episode


def test_cli_trains_td3_on_a_bridged_env(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--agent", "td3", "--env", "gymnasium:Pendulum-v1", "--num-seeds", "2"]
    argv += ["--total-steps", "96", "--learning-starts", "32", "--batch-size", "16"]
    argv += ["--buffer-size", "96", "--hidden-size", "8", "--num-chunks", "2"]
    argv += ["--eval-episodes", "2", "--quiet", "--out", str(out)]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "td3" and len(summary["eval_returns"]) == 2
    assert summary["env_steps_learned"] == summary["env_steps_simulated"] == [96, 96]
    assert all(np.isfinite(summary["eval_returns"]))
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 and "critic_loss" in rows[0]
    bad = tmp_path / "bad"
    capsys.readouterr()
    assert train.main(["--agent", "ddpg", "--env", "gymnasium:CartPole-v1", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "train.py: error: --agent ddpg needs a continuous action space; "
        "CartPole-v1 has discrete actions"
    ]
    assert not bad.exists()
