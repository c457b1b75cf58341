"""Tests for rljax.agents.td_actor_critic: loss against numpy, gradient isolation (semi-gradient
TD), the EMA metric, jit/vmap training, config checks, and a slow CartPole learning test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation
from rljax.agents import base, td_actor_critic
from rljax.run import loop
from rljax.types import Transition

T, N = 2, 4


@pytest.fixture(scope="module")
def cartpole():
    env, env_params = envs.make("CartPole-v1")
    return env, env_params, envs.spec(env, env_params)


def fixed_batch(seed=0):
    """A [T, N] batch with a termination and a truncation."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[0, 1] = True
    truncated[1, 2] = True
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return Transition(
        obs=f(T, N, 4),
        action=jnp.asarray(rng.integers(0, 2, (T, N)), jnp.int32),
        log_prob=jnp.zeros((T, N)),
        reward=f(T, N),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=f(T, N, 4),
        episode_return=f(T, N),
        episode_length=jnp.zeros((T, N), jnp.int32),
    )


def setup(spec, seed=0):
    actor, critic = base.actor_and_critic(spec, 16, 1, "relu")
    traj = fixed_batch(seed)
    k1, k2 = jax.random.split(jax.random.key(seed))
    params = {"actor": actor.init(k1, traj.obs[0, 0]), "critic": critic.init(k2, traj.obs[0, 0])}
    return actor, critic, traj, params


@pytest.mark.parametrize("gamma,ent_coef", [(0.9, 0.0), (1.0, 0.01)])
def test_loss_matches_numpy(cartpole, gamma, ent_coef):
    actor, critic, traj, params = setup(cartpole[2])
    config = td_actor_critic.TDActorCriticConfig(gamma=gamma, ent_coef=ent_coef)
    loss, info = jax.jit(td_actor_critic.td_actor_critic_loss, static_argnums=(0, 1, 4))(
        actor.apply, critic.apply, params, traj, config
    )
    logits = np.asarray(actor.apply(params["actor"], traj.obs), np.float64)
    logits = logits - logits.max(-1, keepdims=True)
    logpi = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    logp = np.take_along_axis(logpi, np.asarray(traj.action)[..., None], -1)[..., 0]
    entropy = -(np.exp(logpi) * logpi).sum(-1)
    v = np.asarray(critic.apply(params["critic"], traj.obs), np.float64)
    v_next = np.asarray(critic.apply(params["critic"], traj.next_obs), np.float64)
    discount = gamma * (1.0 - np.asarray(traj.terminated, np.float64))
    delta = np.asarray(traj.reward, np.float64) + discount * v_next - v
    actor_loss = -(logp * delta).mean()
    critic_loss = 0.5 * (delta**2).mean()
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(info["actor_loss"], actor_loss, **tol)
    np.testing.assert_allclose(info["critic_loss"], critic_loss, **tol)
    np.testing.assert_allclose(info["entropy"], entropy.mean(), **tol)
    np.testing.assert_allclose(loss, actor_loss + critic_loss - ent_coef * entropy.mean(), **tol)


def test_actor_term_gives_critic_no_gradient_and_target_none(cartpole):
    actor, critic, traj, params = setup(cartpole[2], seed=1)
    config = td_actor_critic.TDActorCriticConfig(gamma=0.9)
    term = lambda name: (
        lambda p: td_actor_critic.td_actor_critic_loss(actor.apply, critic.apply, p, traj, config)[
            1
        ][name]
    )
    g_actor = jax.grad(term("actor_loss"))(params)
    g_critic = jax.grad(term("critic_loss"))(params)
    leaves = lambda tree: jax.tree.leaves(tree)
    assert all(bool(jnp.all(x == 0)) for x in leaves(g_actor["critic"]))
    assert any(bool(jnp.any(x != 0)) for x in leaves(g_actor["actor"]))
    assert all(bool(jnp.all(x == 0)) for x in leaves(g_critic["actor"]))
    # Semi-gradient TD(0): the critic's gradient is −mean(δ·∇V(s)); V(s') contributes nothing.
    v_next = critic.apply(params["critic"], traj.next_obs)
    discount = 0.9 * (1.0 - traj.terminated.astype(jnp.float32))
    target = traj.reward + discount * v_next
    semi = jax.grad(lambda p: 0.5 * jnp.mean((target - critic.apply(p, traj.obs)) ** 2))(
        params["critic"]
    )
    for x, y in zip(leaves(g_critic["critic"]), leaves(semi), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_ema_update_matches_loop():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 4)) * 10
    done = rng.random((3, 4)) < 0.4
    ema = 2.0
    for gi, di in zip(g.reshape(-1), done.reshape(-1), strict=True):
        if di:
            ema = 0.05 * gi + 0.95 * ema
    out = td_actor_critic.ema_update(
        jnp.asarray(2.0), jnp.asarray(g, jnp.float32), jnp.asarray(done), 0.05
    )
    np.testing.assert_allclose(out, ema, rtol=1e-5)


@pytest.mark.parametrize("num_steps", [1, 2])
def test_train_jit_vmap_two_seeds(cartpole, num_steps):
    env, env_params, spec = cartpole
    config = td_actor_critic.TDActorCriticConfig(
        total_steps=60 * num_steps, num_envs=4, num_steps=num_steps, hidden_size=8
    )
    config.validate(spec)
    train = jax.jit(jax.vmap(loop.make_train(td_actor_critic.AGENT, config, env, env_params)))
    carry, metrics = train(jax.random.split(jax.random.key(0), 2))
    state = carry.agent
    np.testing.assert_array_equal(state.env_steps, [60 * num_steps] * 2)
    np.testing.assert_array_equal(state.update, [15, 15])
    for k, v in metrics.items():
        assert v.shape == (2, 15), k
        assert np.all(np.isfinite(v)), k
    # some 60-step run completes an episode early on CartPole with a random policy
    assert np.all(metrics["episode_count"].sum(-1) > 0)
    np.testing.assert_allclose(metrics["ema_return"][:, -1], state.ema_return)
    assert np.all(state.ema_return > 0)
    act = td_actor_critic.make_act(config, spec)
    p0 = jax.tree.map(lambda x: x[0], td_actor_critic.AGENT.params(state))
    assert act(jax.random.key(2), p0, carry.obs[0], True).shape == (4,)


def test_update_step_does_not_retrace(cartpole):
    env, env_params, spec = cartpole
    config = td_actor_critic.TDActorCriticConfig(num_envs=2, hidden_size=8, total_steps=64)
    update = loop.update_fn(td_actor_critic.AGENT, config, spec, env, env_params, False)
    traces = []

    def step(carry):
        traces.append(1)
        return update(carry)

    step = jax.jit(step)
    carry = loop.init_fn(td_actor_critic.AGENT, config, spec, env, env_params)(jax.random.key(0))
    for _ in range(3):
        carry, _ = step(carry)
    assert len(traces) == 1


def test_validate_rejects_continuous_env():
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(base.ConfigError, match="--agent td_actor_critic"):
        td_actor_critic.TDActorCriticConfig().validate(envs.spec(env, env_params))


def test_validate_rejects_bad_field(cartpole):
    with pytest.raises(base.ConfigError, match="--ema-alpha"):
        td_actor_critic.TDActorCriticConfig(ema_alpha=1.5).validate(cartpole[2])


@pytest.mark.slow
def test_learns_cartpole(cartpole):
    env, env_params, spec = cartpole
    config = td_actor_critic.TDActorCriticConfig(**td_actor_critic.AGENT.presets["default"])
    train = jax.jit(jax.vmap(loop.make_train(td_actor_critic.AGENT, config, env, env_params)))
    keys = jax.random.split(jax.random.key(0), 8)
    carry, _ = train(keys)
    act = td_actor_critic.make_act(config, spec)
    greedy = lambda k, p, o: act(k, p, o, True)
    ev = jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, env, env_params, 100))
    mean = ev(keys, carry.agent.params["actor"]).mean(-1)
    assert int((mean >= spec.solved_threshold).sum()) >= 7, mean
