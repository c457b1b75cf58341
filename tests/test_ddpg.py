"""Tests for rljax.agents.ddpg: target updates, critic target, DPG gradient, config checks."""

from __future__ import annotations

import functools

import bitwise
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation
from rljax.agents import AGENTS, ConfigError, ddpg, off_policy, optim
from rljax.run import loop

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
def _update_fn(config, warmup):
    """One jitted gymnax update of the runner (collect, then learn) in the given phase."""
    return jax.jit(loop.update_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS, warmup))


def init_carry(config, seed=0):
    return loop.init_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS)(jax.random.key(seed))


def learning_carry(config, seed=0):
    """A run whose warm-up is over and whose online networks differ from their targets; and
    the learning update."""
    carry = init_carry(config, seed)
    warm = _update_fn(config, True)
    for _ in range(config.warmup_updates(SPEC)):
        carry, _ = warm(carry)
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    state = carry.agent
    state = state._replace(
        actor_params=perturb(k1, state.actor_params), critic_params=perturb(k2, state.critic_params)
    )
    return carry._replace(agent=state), _update_fn(config, False)


def learning_state(config, seed=0):
    """The agent state of :func:`learning_carry`."""
    return learning_carry(config, seed)[0].agent


def random_batch(key, n=16, terminated=None):
    ko, ka, kr, kn = jax.random.split(key, 4)
    return off_policy.Experience(
        obs=jax.random.normal(ko, (n, 3)),
        action=jax.random.uniform(ka, (n, 1), minval=-2, maxval=2),
        reward=jax.random.normal(kr, (n,)),
        next_obs=jax.random.normal(kn, (n, 3)),
        terminated=jnp.zeros((n,), bool) if terminated is None else jnp.asarray(terminated),
    )


# ------------------------------------------------------------------ target networks


@pytest.mark.parametrize("tau", [0.005, 0.3, 1.0])
def test_update_targets_each_from_its_own_network(tau):
    state = learning_state(tiny())
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
    state = learning_state(tiny())
    with pytest.raises(AssertionError):
        optim.soft_update(state.actor_params, state.target_critic_params, 0.5)


@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_one_learning_update_moves_targets_by_tau(tau):
    carry, step = learning_carry(tiny(tau=tau))
    state, new = carry.agent, step(carry)[0].agent
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
    state = learning_state(config)
    nets = ddpg.make_networks(config, SPEC)
    batch = random_batch(jax.random.key(3))

    def loss(target_actor, target_critic, critic):
        s = state._replace(target_actor_params=target_actor, target_critic_params=target_critic)
        y = ddpg.td_target(jax.random.key(4), config, nets, SPEC, s, batch)
        return off_policy.critic_loss(critic, nets, SPEC, batch, y)[0]

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
    state = learning_state(config)
    nets = ddpg.make_networks(config, SPEC)
    batch = random_batch(jax.random.key(5), n=4, terminated=[False, True, False, False])
    y = ddpg.td_target(jax.random.key(6), config, nets, SPEC, state, batch)
    mu = nets.actor(state.target_actor_params, batch.next_obs)
    q = nets.critic(state.target_critic_params, batch.next_obs, mu)[0]
    expected = np.asarray(batch.reward) + 0.9 * (1 - np.asarray(batch.terminated)) * np.asarray(q)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[1], batch.reward[1])
    hand = off_policy.critic_target(
        jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5]), jnp.array([4.0, 4.0])
    )
    np.testing.assert_allclose(hand, [1.0, 4.0])


def test_replay_stores_final_observation_and_never_terminates_at_time_limit():
    config = tiny(total_steps=256, buffer_size=256, learning_starts=210)
    # The runner's first 201 updates (all warm-up: one env step each, stored in replay).
    chunk = loop.chunk_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS, 0, 201)
    carry, _ = jax.jit(chunk)(init_carry(config))
    state = carry.agent
    d = state.replay.data
    assert int(state.replay.size) == 201
    assert not bool(d.terminated[:201].any())
    np.testing.assert_array_equal(d.next_obs[:199], d.obs[1:200])  # successors inside episode
    assert not np.allclose(d.next_obs[199], d.obs[200])  # the final obs, not the reset obs
    assert int(carry.window.count) == 1


def test_dpg_gradient_equals_gradient_of_minus_q():
    config = tiny()
    state = learning_state(config)
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
    with pytest.raises(ConfigError, match=flag):
        tiny(**kw).validate(envs.spec(env, env_params))


def test_presets_validate():
    for preset in ddpg.AGENT.presets.values():
        ddpg.DDPGConfig(**preset).validate(SPEC)


# ------------------------------------------------------------------ jit / vmap


def key_data(tree):
    """``tree`` with its typed PRNG keys as their raw data (comparable as arrays)."""
    is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _seed_keys(n=2):
    return jax.random.split(jax.random.key(0), n)


def test_update_fn_jit_vmap_no_retrace_and_equals_make_train():
    """The runner's update, jitted and seed-vmapped, traces once per phase; stepping it through
    the warm-up and then the learning phase gives loop.make_train's run."""
    config = tiny(total_steps=24)
    keys = _seed_keys()
    n_warm = config.warmup_updates(SPEC)
    assert 0 < n_warm < 24
    warm = jax.vmap(loop.update_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS, True))
    learn = jax.vmap(loop.update_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS, False))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def warm_step(carries):
        return warm(carries)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def learn_step(carries):
        return learn(carries)

    steps = {True: warm_step, False: learn_step}
    carries = jax.jit(jax.vmap(loop.init_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS)))(keys)
    for u in range(24):
        carries, metrics = steps[u < n_warm](carries)
    assert metrics["critic_loss"].shape == (2,)
    train = loop.make_train(ddpg.AGENT, config, ENV, ENV_PARAMS)
    final, train_metrics = jax.jit(jax.vmap(train))(keys)
    assert train_metrics["actor_loss"].shape == (2, 24)
    np.testing.assert_array_equal(final.agent.env_steps, [24, 24])
    np.testing.assert_array_equal(carries.agent.env_steps, [24, 24])
    chex.assert_trees_all_close(
        final.agent.actor_params, carries.agent.actor_params, rtol=1e-4, atol=1e-6
    )
    assert not jnp.allclose(carries.obs[0], carries.obs[1])  # the seeds differ


def test_chunked_runner_equals_make_train():
    """loop.chunk_fn over consecutive chunks (one of them split at the warm-up's end) is
    loop.make_train's program: the same final run and metrics."""
    config = tiny(total_steps=24)
    keys = _seed_keys()
    n_warm = config.warmup_updates(SPEC)
    lengths = (n_warm - 3, 7, 24 - n_warm - 4)
    assert loop.phases(ddpg.AGENT, config, SPEC, n_warm - 3, 7) == [(True, 3), (False, 4)]
    carries = bitwise.jit(jax.vmap(loop.init_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS)))(keys)
    start, parts = 0, []
    for length in lengths:
        chunk = loop.chunk_fn(ddpg.AGENT, config, SPEC, ENV, ENV_PARAMS, start, length)
        carries, metrics = bitwise.jit(jax.vmap(chunk))(carries)
        parts.append(metrics)
        start += length
    assert start == 24
    metrics = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *parts)
    train = loop.make_train(ddpg.AGENT, config, ENV, ENV_PARAMS)
    final, train_metrics = bitwise.jit(jax.vmap(train))(keys)
    assert set(train_metrics) == set(metrics)
    assert {"episode_return_sum", "episode_count", "critic_loss"} <= set(metrics)
    chex.assert_trees_all_close(
        (key_data(carries), metrics), (key_data(final), train_metrics), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(final.agent.update, [24, 24])
    # The warm-up phase learns nothing; the learning phase does, from its first update.
    closs = np.asarray(metrics["critic_loss"])
    assert (closs[:, :n_warm] == 0).all() and (closs[:, n_warm:] != 0).all()


@pytest.mark.parametrize("name", ["ddpg", "td3"])
def test_warmup_phase_computes_no_learning(name):
    """The warm-up phase is its own program: its learning step (and its whole update) contains
    no network (no dot_general, so no gradient), while the learning phase's does."""
    agent = AGENTS[name]
    config = agent.config(**TINY)
    keys = _seed_keys()
    carries = jax.vmap(loop.init_fn(agent, config, SPEC, ENV, ENV_PARAMS))(keys)
    collect = loop.collect_fn(agent, config, SPEC, ENV, ENV_PARAMS, True)
    traj = jax.vmap(collect)(carries)[-1]
    assert traj.reward.shape == (2, config.policy_delay, config.num_envs)

    def learn_jaxpr(warmup):
        learn = jax.vmap(loop.learn_fn(agent, config, SPEC, warmup=warmup))
        return str(jax.make_jaxpr(learn)(carries, traj))

    def update_jaxpr(warmup):
        update = jax.vmap(loop.update_fn(agent, config, SPEC, ENV, ENV_PARAMS, warmup))
        return str(jax.make_jaxpr(update)(carries))

    assert "dot_general" not in learn_jaxpr(True)
    assert "dot_general" in learn_jaxpr(False)
    assert "dot_general" not in update_jaxpr(True)
    assert "dot_general" in update_jaxpr(False)
    # And it only stores: parameters and optimisers untouched, the steps in replay.
    new, metrics = jax.jit(jax.vmap(loop.learn_fn(agent, config, SPEC, warmup=True)))(carries, traj)
    s0, s1 = carries.agent, new.agent
    chex.assert_trees_all_equal(
        (s0.actor_params, s0.critic_params, s0.actor_opt_state, s0.critic_opt_state),
        (s1.actor_params, s1.critic_params, s1.actor_opt_state, s1.critic_opt_state),
    )
    n = config.policy_delay * config.num_envs
    np.testing.assert_array_equal(s1.replay.size, [n, n])
    np.testing.assert_array_equal(s1.replay.data.obs[:, :n], traj.obs.reshape(2, n, -1))
    for k in ("critic_loss", "actor_loss", "q_mean"):
        np.testing.assert_array_equal(metrics[k], [0.0, 0.0])


def test_warmup_policy_is_uniform_in_the_bounds_and_ignores_the_actor():
    config = tiny()
    state = ddpg.init(jax.random.key(0), config, SPEC)
    other = state._replace(actor_params=perturb(jax.random.key(1), state.actor_params, 1.0))
    obs = jax.random.normal(jax.random.key(2), (20_000, 3))
    policy = ddpg.make_policy(config, SPEC, warmup=True)
    a, log_prob = jax.jit(policy)(jax.random.key(3), state, obs)
    assert a.shape == (20_000, 1) and log_prob.shape == (20_000,)
    np.testing.assert_array_equal(a, jax.jit(policy)(jax.random.key(3), other, obs)[0])
    a = np.asarray(a)
    assert a.min() >= SPEC.action_low and a.max() <= SPEC.action_high
    counts = np.histogram(a, bins=8, range=(SPEC.action_low, SPEC.action_high))[0]
    assert np.all(np.abs(counts - 2_500) < 250), counts  # flat over the bounds
    # After the warm-up the policy acts on the actor: μ(s) plus noise.
    learning = ddpg.make_policy(config, SPEC)
    b = jax.jit(learning)(jax.random.key(3), state, obs)[0]
    c = jax.jit(learning)(jax.random.key(3), other, obs)[0]
    assert not np.allclose(b, c)


def test_registered():
    assert AGENTS["ddpg"] is ddpg.AGENT


@pytest.mark.slow
def test_ddpg_learns_pendulum():
    config = ddpg.DDPGConfig()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(8))
    carry, _ = jax.jit(jax.vmap(loop.make_train(ddpg.AGENT, config, ENV, ENV_PARAMS)))(keys)
    state = carry.agent
    act = ddpg.make_act(config, SPEC)
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    ev = jax.jit(jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, ENV, ENV_PARAMS, 100)))
    returns = np.asarray(ev(keys, state.actor_params).mean(-1))
    assert (returns >= -200).sum() >= 7, returns
