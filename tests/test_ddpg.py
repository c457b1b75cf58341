"""Tests for rljax.agents.ddpg: target updates, critic target, DPG gradient, config checks."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation
from rljax.agents import AGENTS, common, ddpg

ENV, ENV_PARAMS = envs.make("Pendulum-v1")
SPEC = envs.spec(ENV, ENV_PARAMS)
TINY = dict(
    total_steps=64, buffer_size=64, batch_size=8, learning_starts=8, hidden_size=8, num_layers=1
)


def tiny(**kw) -> ddpg.DDPGConfig:
    return ddpg.DDPGConfig(**{**TINY, **kw})


def perturb(key, tree, scale=0.1):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [x + scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    )


def polyak(online, old, tau):
    return jax.tree.map(lambda o, t: tau * np.asarray(o) + (1 - tau) * np.asarray(t), online, old)


@functools.cache
def _step_fn(config):
    return jax.jit(lambda s: ddpg.update_step(s, config, ENV, ENV_PARAMS))


def learning_state(config, seed=0):
    """A state whose warm-up is over and whose online networks differ from their targets."""
    state = ddpg.init(jax.random.key(seed), config, ENV, ENV_PARAMS)
    step = _step_fn(config)
    for _ in range(config.warmup_updates(SPEC)):
        state, _ = step(state)
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    return state._replace(
        actor_params=perturb(k1, state.actor_params), critic_params=perturb(k2, state.critic_params)
    ), step


def random_batch(key, n=16, terminated=None):
    ko, ka, kr, kn = jax.random.split(key, 4)
    return ddpg.Experience(
        obs=jax.random.normal(ko, (n, 3)),
        action=jax.random.uniform(ka, (n, 1), minval=-2, maxval=2),
        reward=jax.random.normal(kr, (n,)),
        next_obs=jax.random.normal(kn, (n, 3)),
        terminated=jnp.zeros((n,), bool) if terminated is None else jnp.asarray(terminated),
    )


# ------------------------------------------------------------------ target networks


@pytest.mark.parametrize("tau", [0.005, 0.3, 1.0])
def test_update_targets_each_from_its_own_network(tau):
    state, _ = learning_state(tiny())
    # Actor and critic leaves differ in shape, so a crossed pair cannot even be formed.
    shapes = lambda t: jax.tree.map(jnp.shape, t)  # noqa: E731
    assert shapes(state.actor_params) != shapes(state.critic_params)
    new = ddpg.update_targets(state, tau)
    chex.assert_trees_all_close(
        new.target_actor_params, polyak(state.actor_params, state.target_actor_params, tau)
    )
    chex.assert_trees_all_close(
        new.target_critic_params, polyak(state.critic_params, state.target_critic_params, tau)
    )
    if tau == 1.0:
        chex.assert_trees_all_equal(new.target_actor_params, state.actor_params)
        chex.assert_trees_all_equal(new.target_critic_params, state.critic_params)


def test_soft_update_rejects_crossed_networks():
    state, _ = learning_state(tiny())
    with pytest.raises(AssertionError):
        ddpg.soft_update(state.actor_params, state.target_critic_params, 0.5)


@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_one_learning_update_moves_targets_by_tau(tau):
    state, step = learning_state(tiny(tau=tau))
    new, _ = step(state)
    assert not jnp.allclose(new.actor_params["params"]["Dense_0"]["kernel"],
                            state.actor_params["params"]["Dense_0"]["kernel"])  # fmt: skip
    chex.assert_trees_all_close(
        new.target_actor_params,
        polyak(new.actor_params, state.target_actor_params, tau),
        atol=1e-6,
    )
    chex.assert_trees_all_close(
        new.target_critic_params,
        polyak(new.critic_params, state.target_critic_params, tau),
        atol=1e-6,
    )


def test_targets_get_no_gradient_and_actor_loss_none_to_critic():
    config = tiny()
    state, _ = learning_state(config)
    nets = ddpg.make_networks(config, SPEC)
    batch = random_batch(jax.random.key(3))

    def loss(target_actor, target_critic, critic):
        s = state._replace(target_actor_params=target_actor, target_critic_params=target_critic)
        y = ddpg.td_target(jax.random.key(4), config, nets, SPEC, s, batch)
        return ddpg.critic_loss(critic, nets, batch, y)[0]

    g = jax.grad(loss, argnums=(0, 1, 2))(
        state.target_actor_params, state.target_critic_params, state.critic_params
    )
    chex.assert_trees_all_equal(g[0], jax.tree.map(jnp.zeros_like, g[0]))
    chex.assert_trees_all_equal(g[1], jax.tree.map(jnp.zeros_like, g[1]))
    assert optax_norm(g[2]) > 0
    g_critic = jax.grad(ddpg.actor_loss, argnums=1)(
        state.actor_params, state.critic_params, nets, batch.obs
    )
    chex.assert_trees_all_equal(g_critic, jax.tree.map(jnp.zeros_like, g_critic))


def optax_norm(tree):
    return float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


# ------------------------------------------------------------------ losses


def test_critic_target_matches_numpy_terminated_zeroes_truncated_not():
    config = tiny(gamma=0.9)
    state, _ = learning_state(config)
    nets = ddpg.make_networks(config, SPEC)
    batch = random_batch(jax.random.key(5), n=4, terminated=[False, True, False, False])
    y = ddpg.td_target(jax.random.key(6), config, nets, SPEC, state, batch)
    mu = nets.actor(state.target_actor_params, batch.next_obs)
    q = nets.critic(state.target_critic_params, batch.next_obs, mu)[0]
    expected = np.asarray(batch.reward) + 0.9 * (1 - np.asarray(batch.terminated)) * np.asarray(q)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[1], batch.reward[1])
    hand = ddpg.critic_target(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5]), jnp.array([4.0, 4.0]))
    np.testing.assert_allclose(hand, [1.0, 4.0])


def test_replay_stores_final_observation_and_never_terminates_at_time_limit():
    config = tiny(total_steps=256, buffer_size=256, learning_starts=210)
    state = ddpg.init(jax.random.key(0), config, ENV, ENV_PARAMS)
    step = jax.jit(lambda s: ddpg.update_step(s, config, ENV, ENV_PARAMS))
    for _ in range(201):
        state, _ = step(state)
    d = state.replay.data
    assert not bool(d.terminated[:201].any())
    np.testing.assert_array_equal(d.next_obs[:199], d.obs[1:200])  # successors inside episode
    assert not np.allclose(d.next_obs[199], d.obs[200])  # the final obs, not the reset obs
    assert int(state.window.count) == 1


def test_dpg_gradient_equals_gradient_of_minus_q():
    config = tiny()
    state, _ = learning_state(config)
    nets = ddpg.make_networks(config, SPEC)
    obs = random_batch(jax.random.key(7)).obs
    g = jax.grad(ddpg.actor_loss)(state.actor_params, state.critic_params, nets, obs)

    def minus_q(actor_params):
        a = nets.actor(actor_params, obs)
        return -jnp.mean(nets.critic(state.critic_params, obs, a)[0])

    chex.assert_trees_all_close(g, jax.grad(minus_q)(state.actor_params), rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ config checks


@pytest.mark.parametrize(
    "env_name, kw, flag",
    [
        ("CartPole-v1", {}, "--agent ddpg"),
        ("Pendulum-v1", dict(batch_size=128, buffer_size=64), "--batch-size"),
        ("Pendulum-v1", dict(tau=0.0), "--tau"),
        ("Pendulum-v1", dict(tau=1.5), "--tau"),
        ("Pendulum-v1", dict(learning_starts=4), "--learning-starts"),
        ("Pendulum-v1", dict(num_envs=0), "--num-envs"),
        ("Pendulum-v1", dict(batch_size=0), "--batch-size"),
        ("Pendulum-v1", dict(lr=float("nan")), "--lr"),
        ("Pendulum-v1", dict(critic_lr=-1.0), "--critic-lr"),
        ("Pendulum-v1", dict(exploration="ou"), "--exploration"),
        ("Pendulum-v1", dict(total_steps=8), "--total-steps"),
    ],
)
def test_validate_rejects_bad_input(env_name, kw, flag):
    env, env_params = envs.make(env_name)
    with pytest.raises(common.ConfigError, match=flag):
        tiny(**kw).validate(envs.spec(env, env_params))


def test_presets_validate():
    for preset in ddpg.PRESETS.values():
        ddpg.DDPGConfig(**preset).validate(SPEC)


# ------------------------------------------------------------------ jit / vmap


def test_update_step_jit_vmap_no_retrace_and_equals_make_train():
    config = tiny(total_steps=24)
    keys = jax.random.split(jax.random.key(0), 2)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(states):
        return jax.vmap(lambda s: ddpg.update_step(s, config, ENV, ENV_PARAMS))(states)

    states = jax.jit(jax.vmap(lambda k: ddpg.init(k, config, ENV, ENV_PARAMS)))(keys)
    for _ in range(24):
        states, metrics = step(states)
    assert metrics["critic_loss"].shape == (2,)
    final, train_metrics = jax.jit(jax.vmap(ddpg.make_train(config, ENV, ENV_PARAMS)))(keys)
    assert train_metrics["actor_loss"].shape == (2, 24)
    np.testing.assert_array_equal(final.env_steps, [24, 24])
    chex.assert_trees_all_close(final.actor_params, states.actor_params, rtol=1e-4, atol=1e-6)
    assert not jnp.allclose(states.obs[0], states.obs[1])  # the seeds differ


def test_registered():
    assert AGENTS["ddpg"] is ddpg.AGENT


@pytest.mark.slow
def test_ddpg_learns_pendulum():
    config = ddpg.DDPGConfig()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(8))
    state, _ = jax.jit(jax.vmap(ddpg.make_train(config, ENV, ENV_PARAMS)))(keys)
    act = ddpg.make_act(config, ENV, ENV_PARAMS)
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    ev = jax.jit(jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, ENV, ENV_PARAMS, 100)))
    returns = np.asarray(ev(keys, state.actor_params).mean(-1))
    assert (returns >= -200).sum() >= 7, returns
