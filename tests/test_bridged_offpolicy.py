"""DDPG and TD3 on Gymnasium envs through the host bridge: the same learning code as gymnax."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bitwise
import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, envs_gymnasium
from rljax.agents import ddpg, td3
from rljax.rollout import rollout
from rljax.run import loop

ENV, ENV_PARAMS = envs.make("Pendulum-v1")
SPEC = envs.spec(ENV, ENV_PARAMS)
TINY = dict(
    total_steps=64, buffer_size=64, batch_size=8, learning_starts=8, hidden_size=8, num_layers=1
)
CONFIGS = {
    "ddpg": ddpg.DDPGConfig(**TINY, num_envs=2),
    # policy_delay 2, and σ decaying with env_steps (the policy reads it from the agent state).
    "td3": td3.TD3Config(**TINY, num_envs=2, exploration="epsilon_decay", exploration_noise=0.5),
}
AGENT = {"ddpg": ddpg.AGENT, "td3": td3.AGENT}


def key_data(tree):
    """``tree`` with its typed PRNG keys as their raw data (comparable as arrays)."""
    is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _gymnax_runs(agent, config, num_seeds=2):
    """Seed-vmapped initial runs on gymnax Pendulum, and the jitted gymnax updates per phase."""
    keys = jax.random.split(jax.random.key(0), num_seeds)
    carry = bitwise.jit(jax.vmap(loop.init_fn(agent, config, SPEC, ENV, ENV_PARAMS)))(keys)
    updates = {
        w: bitwise.jit(jax.vmap(loop.update_fn(agent, config, SPEC, ENV, ENV_PARAMS, w)))
        for w in (True, False)
    }
    return carry, updates


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bridge_pieces_reproduce_the_gymnax_update(name):
    """The pieces the host bridge uses (the agent's make_policy acting step by step with the
    run's collection stream, the steps brought to the host as numpy, then the bridge's learner
    jit(vmap(loop.learn_fn))) reproduce the gymnax update loop.update_fn bitwise on the same
    transitions (replay, networks, optimisers, counters, window, metrics, keys), in warm-up
    updates and in learning updates; warm-up only stores, learning learns."""
    agent, config = AGENT[name], CONFIGS[name]
    n_warm = agent.warmup_updates(config, SPEC)
    assert n_warm >= 1 and (name != "td3" or config.policy_delay == 2)
    carry, updates = _gymnax_runs(agent, config)
    learners = {
        w: bitwise.jit(jax.vmap(loop.learn_fn(agent, config, SPEC, w))) for w in (True, False)
    }

    T = agent.collection(config, SPEC).num_steps

    def by_hand(c, warmup):
        policy = agent.make_policy(config, SPEC, warmup)
        key, update_key = jax.random.split(c.key)  # the collection stream, split per update
        act = lambda k, obs: policy(k, c.agent, obs)
        env_state, obs, traj = rollout(
            jax.random.split(update_key, T),
            act,
            ENV,
            ENV_PARAMS,
            c.env_state,
            c.obs,
            loop.clip_action(SPEC),
        )
        return c._replace(key=key, env_state=env_state, obs=obs), traj

    collect = {w: bitwise.jit(jax.vmap(lambda c, w=w: by_hand(c, w))) for w in (True, False)}
    for u in range(n_warm + 2):
        warm = u < n_warm
        ref, ref_m = updates[warm](carry)
        collected, traj = collect[warm](carry)
        traj = jax.device_get(traj)  # on the host, as host_rollout gives it
        got, got_m = learners[warm](collected, traj)
        chex.assert_trees_all_equal(key_data((ref, ref_m)), key_data((got, got_m)))
        s0, s1 = carry.agent, got.agent
        np.testing.assert_array_equal(s1.actor_opt_state[0].count > 0, [not warm] * 2)
        np.testing.assert_array_equal(got_m["critic_loss"] != 0.0, [not warm] * 2)
        n = (u + 1) * config.steps_per_update(SPEC)
        np.testing.assert_array_equal(s1.replay.size, [n, n])
        if warm:  # only stored: the networks and optimisers as they were
            chex.assert_trees_all_equal(
                (s0.actor_params, s0.critic_params, s0.critic_opt_state),
                (s1.actor_params, s1.critic_params, s1.critic_opt_state),
            )
            assert np.all(np.abs(traj.action) <= 2.0)
        carry = ref
    assert (np.asarray(carry.agent.env_steps) == (n_warm + 2) * config.steps_per_update(SPEC)).all()


class GymnaxHost:
    """gymnax Pendulum stepped on the host, behind the interface host_rollout uses (for the
    gymnax path's environments, picked up where a gymnax run left them)."""

    def __init__(self, env_state, obs):
        self.env_state, self.obs = env_state, np.asarray(obs)
        self.num_seeds, self.num_envs = self.obs.shape[:2]
        step = lambda k, s, a: envs.step(k, ENV, ENV_PARAMS, s, a)
        self._step = jax.jit(jax.vmap(step))
        self._keys = jax.random.split(jax.random.key(99), self.num_seeds)

    def step(self, action):
        action = np.clip(action, SPEC.action_low, SPEC.action_high)
        obs, self.env_state, reward, terminated, truncated, info = self._step(
            self._keys, self.env_state, action
        )
        self.obs = np.asarray(obs)
        return {
            "obs": self.obs,
            "reward": np.asarray(reward),
            "terminated": np.asarray(terminated),
            "truncated": np.asarray(truncated),
            "final_obs": np.asarray(info["final_observation"]),
            "episode_return": np.asarray(info["episode_return"]),
            "episode_length": np.asarray(info["episode_length"]),
        }


@pytest.mark.parametrize("name", list(CONFIGS))
def test_host_path_and_gymnax_path_store_and_learn_the_same(name):
    """From the end of a gymnax run's warm-up, with a deterministic behaviour policy (σ = 0,
    so the same states give the same actions): the host path (host_rollout with the agent's
    make_policy, then the bridge's jit(vmap(loop.learn_fn))) and the gymnax path
    (loop.update_fn) see the same transitions and store and learn the same."""
    agent = AGENT[name]
    config = CONFIGS[name].replace(exploration_noise=0.0)
    n_warm = agent.warmup_updates(config, SPEC)
    carry, updates = _gymnax_runs(agent, config)
    for _ in range(n_warm):
        carry, _ = updates[True](carry)
    host = GymnaxHost(carry.env_state, carry.obs)
    policy = agent.make_policy(config, SPEC, False)
    learn = jax.jit(jax.vmap(loop.learn_fn(agent, config, SPEC, False)))
    T = agent.collection(config, SPEC).num_steps
    ref, got = carry, carry._replace(env_state=None)
    for _ in range(3):
        ref, ref_m = updates[False](ref)
        key, traj = envs_gymnasium.host_rollout(got.key, policy, got.agent, host, T)
        assert traj.reward.shape == (2, T, config.num_envs)
        assert not traj.done.any()  # no resets: the envs' own keys play no part
        got, got_m = learn(got._replace(key=key), traj)
        chex.assert_trees_all_close(host.obs, ref.obs, rtol=1e-6)
        chex.assert_trees_all_close(
            key_data((got.agent, got.window, got_m)),
            key_data((ref.agent, ref.window, ref_m)),
            rtol=1e-5,
            atol=1e-6,
        )
    assert (np.asarray(got.agent.actor_opt_state[0].count) == 3).all()
    n = (n_warm + 3) * config.steps_per_update(SPEC)
    np.testing.assert_array_equal(got.agent.replay.size, [n, n])
    chex.assert_trees_all_equal(got.agent.replay.data.action, ref.agent.replay.data.action)


def _bridged_run(config, num_updates, num_seeds=2, max_steps=None, seed=7):
    """``num_updates`` bridged updates on Pendulum, as the bridge runs them (host_rollout with
    the agent's make_policy, then jit(vmap(loop.learn_fn)), each in its phase):
    (spec, initial carry, final carry, trajs [S, U·T, N], metrics per update)."""
    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    name = "gymnasium:Pendulum-v1"
    vecs = [
        envs_gymnasium.make_vector(name, config.num_envs, seed + 100 * s, **kwargs)
        for s in range(num_seeds)
    ]
    host = envs_gymnasium.HostEnvs(vecs)
    spec = envs_gymnasium.spec(vecs[0])
    agent = AGENT[config.agent_name]
    n_warm = agent.warmup_updates(config, spec)
    carry0 = jax.jit(jax.vmap(loop.init_fn(agent, config, spec)))(
        jax.random.split(jax.random.key(0), num_seeds)
    )
    policies = {w: agent.make_policy(config, spec, w) for w in (True, False)}
    learners = {w: jax.jit(jax.vmap(loop.learn_fn(agent, config, spec, w))) for w in (True, False)}
    T = agent.collection(config, spec).num_steps
    carry, trajs, metrics = carry0, [], []
    try:
        for u in range(num_updates):
            warm = u < n_warm
            key, traj = envs_gymnasium.host_rollout(carry.key, policies[warm], carry.agent, host, T)
            carry, m = learners[warm](carry._replace(key=key), traj)
            trajs.append(traj)
            metrics.append(m)
    finally:
        host.close()
    traj = jax.tree.map(lambda *x: np.concatenate(x, axis=1), *trajs)  # [S, U·T, N]
    return spec, carry0, carry, traj, metrics


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bridged_pendulum_learns_finite_and_fills_replay(name):
    config = CONFIGS[name]
    spec = envs_gymnasium.spec("gymnasium:Pendulum-v1")
    n_warm = config.warmup_updates(spec)
    u = n_warm + 3
    _, carry0, carry, traj, metrics = _bridged_run(config, u)
    state0, state = carry0.agent, carry.agent
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
    assert carry.env_state is None  # the envs live on the host
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
    _, _, carry, traj, _ = _bridged_run(config, 4, num_seeds=1, max_steps=5, seed=11)
    state = carry.agent
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
