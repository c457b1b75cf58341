"""Tests for rljax.agents.reinforce: loss against numpy, bandit policy gradient, gradient
isolation, jit/vmap training, config checks, and a slow CartPole learning test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation, returns
from rljax.agents import base, reinforce
from rljax.run import loop
from rljax.types import Transition

T, N = 7, 3


@pytest.fixture(scope="module")
def cartpole():
    env, env_params = envs.make("CartPole-v1")
    return env, env_params, envs.spec(env, env_params)


def fixed_batch(num_actions=2, obs_dim=4, seed=0):
    """A [T, N] batch with a termination, a truncation and a cut mid-episode."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[2, 0] = True
    truncated[4, 1] = True
    terminated[0, 2] = truncated[5, 2] = True
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return Transition(
        obs=f(T, N, obs_dim),
        action=jnp.asarray(rng.integers(0, num_actions, (T, N)), jnp.int32),
        log_prob=jnp.zeros((T, N)),
        reward=f(T, N),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=f(T, N, obs_dim),
        episode_return=jnp.zeros((T, N)),
        episode_length=jnp.zeros((T, N), jnp.int32),
    )


def np_returns(r, discount, v_next, done):
    g = np.zeros_like(r)
    for t in reversed(range(len(r))):
        boot = v_next[t] if (done[t] or t == len(r) - 1) else g[t + 1]
        g[t] = r[t] + discount[t] * boot
    return g


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("baseline", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_loss_matches_numpy(cartpole, baseline, normalize):
    _, _, spec = cartpole
    config = reinforce.ReinforceConfig(baseline=baseline, normalize_advantages=normalize, gamma=0.9)
    actor, critic = base.actor_and_critic(spec, 16, 1, "relu")
    traj = fixed_batch()
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"policy": actor.init(k1, traj.obs[0, 0]), "baseline": critic.init(k2, traj.obs[0, 0])}
    loss, info = jax.jit(reinforce.reinforce_loss, static_argnums=(0, 1, 4))(
        actor.apply, critic.apply, params, traj, config
    )
    # numpy float64 reference from the network outputs
    logits = np.asarray(actor.apply(params["policy"], traj.obs), np.float64)
    a = np.asarray(traj.action)
    logp = np.take_along_axis(np_log_softmax(logits), a[..., None], -1)[..., 0]
    if baseline:
        v = np.asarray(critic.apply(params["baseline"], traj.obs), np.float64)
        v_next = np.asarray(critic.apply(params["baseline"], traj.next_obs), np.float64)
    else:
        v = v_next = np.zeros((T, N))
    discount = 0.9 * (1.0 - np.asarray(traj.terminated, np.float64))
    done = np.asarray(traj.done)
    r = np.asarray(traj.reward, np.float64)
    g = np.stack(
        [np_returns(r[:, i], discount[:, i], v_next[:, i], done[:, i]) for i in range(N)], 1
    )
    adv = g - v
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = -(logp * adv).mean()
    base_loss = ((g - v) ** 2).mean() if baseline else 0.0
    np.testing.assert_allclose(info["policy_loss"], policy, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(info["baseline_loss"], base_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss, policy + base_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(info["return_mean"], g.mean(), rtol=1e-4, atol=1e-5)


def bandit_fns():
    logits_fn = lambda theta, obs: jnp.broadcast_to(theta, obs.shape[:-1] + theta.shape)
    value_fn = lambda phi, obs: jnp.broadcast_to(phi, obs.shape[:-1])
    return logits_fn, value_fn


def bandit_batch(actions, arm_rewards):
    """One-step episodes (every step terminates) of a bandit; [T, 1]."""
    a = jnp.asarray(actions, jnp.int32).reshape(-1, 1)
    z = jnp.zeros(a.shape + (1,))
    done = jnp.ones(a.shape, bool)
    return Transition(
        z, a, jnp.zeros(a.shape), jnp.asarray(arm_rewards, jnp.float32)[a], done,
        jnp.zeros(a.shape, bool), z, jnp.zeros(a.shape), jnp.zeros(a.shape, jnp.int32),
    )  # fmt: skip


@pytest.mark.parametrize("baseline", [False, True])
def test_bandit_gradient_equals_score_function_estimate(baseline):
    logits_fn, value_fn = bandit_fns()
    theta, phi = jnp.array([0.3, -0.2]), jnp.array(1.5)
    actions = np.array([0, 1, 1, 0, 1, 1, 0, 1])
    traj = bandit_batch(actions, [1.0, 3.0])
    config = reinforce.ReinforceConfig(baseline=baseline, normalize_advantages=False)
    params = {"policy": theta, "baseline": phi}
    grads, _ = jax.grad(reinforce.reinforce_loss, argnums=2, has_aux=True)(
        logits_fn, value_fn, params, traj, config
    )
    g = np.where(actions == 0, 1.0, 3.0)
    b = 1.5 if baseline else 0.0
    pi = np.exp(np_log_softmax(np.asarray(theta, np.float64)))
    expected = -np.mean((g - b)[:, None] * (np.eye(2)[actions] - pi), 0)
    np.testing.assert_allclose(grads["policy"], expected, rtol=1e-5, atol=1e-6)
    if baseline:  # d/dφ mean (G − φ)² = −2·mean(G − φ)
        np.testing.assert_allclose(grads["baseline"], -2 * np.mean(g - b), rtol=1e-5)


def test_bandit_gradient_matches_analytic_policy_gradient():
    """Averaged over many sampled pulls, −∇L ≈ ∇J = π_a (r_a − J) (exact gradient)."""
    logits_fn, value_fn = bandit_fns()
    theta, r = jnp.array([0.4, -0.1]), np.array([1.0, 3.0])
    actions = jax.random.categorical(jax.random.key(3), theta, shape=(50_000,))
    traj = bandit_batch(actions, r)
    config = reinforce.ReinforceConfig(baseline=False, normalize_advantages=False)
    grads, _ = jax.grad(reinforce.reinforce_loss, argnums=2, has_aux=True)(
        logits_fn, value_fn, {"policy": theta, "baseline": {}}, traj, config
    )
    pi = np.exp(np_log_softmax(np.asarray(theta, np.float64)))
    exact = pi * (r - pi @ r)
    np.testing.assert_allclose(-np.asarray(grads["policy"]), exact, atol=0.02)


def test_gradient_isolation(cartpole):
    """L_π gives the baseline no gradient; L_V none to the policy; the return target none."""
    _, _, spec = cartpole
    config = reinforce.ReinforceConfig(gamma=0.9)
    actor, critic = base.actor_and_critic(spec, 16, 1, "relu")
    traj = fixed_batch()
    k1, k2 = jax.random.split(jax.random.key(1))
    params = {"policy": actor.init(k1, traj.obs[0, 0]), "baseline": critic.init(k2, traj.obs[0, 0])}
    term = lambda name: (
        lambda p: reinforce.reinforce_loss(actor.apply, critic.apply, p, traj, config)[1][name]
    )
    g_pi = jax.grad(term("policy_loss"))(params)
    g_v = jax.grad(term("baseline_loss"))(params)
    zero = lambda tree: all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(tree))
    assert zero(g_pi["baseline"]) and not zero(g_pi["policy"])
    assert zero(g_v["policy"]) and not zero(g_v["baseline"])
    # the baseline's gradient is that of a fixed-target regression (no gradient through G)
    v_next = critic.apply(params["baseline"], traj.next_obs)
    discount = 0.9 * (1.0 - traj.terminated.astype(jnp.float32))
    g = base.over_envs(returns.discounted_returns)(traj.reward, discount, v_next, traj.done)
    fixed = jax.grad(lambda p: jnp.mean((g - critic.apply(p, traj.obs)) ** 2))(params["baseline"])
    for x, y in zip(jax.tree.leaves(g_v["baseline"]), jax.tree.leaves(fixed), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("baseline", [True, False])
def test_train_jit_vmap_two_seeds(cartpole, baseline):
    env, env_params, spec = cartpole
    config = reinforce.ReinforceConfig(
        total_steps=96, num_envs=2, num_steps=16, hidden_size=8, baseline=baseline
    )
    config.validate(spec)
    train = jax.jit(jax.vmap(loop.make_train(reinforce.AGENT, config, env, env_params)))
    carry, metrics = train(jax.random.split(jax.random.key(0), 2))
    state = carry.agent
    assert carry.obs.shape == (2, 2, 4)
    np.testing.assert_array_equal(state.env_steps, [96, 96])
    np.testing.assert_array_equal(state.update, [3, 3])
    if not baseline:
        assert state.params["baseline"] == {}
    for k, v in metrics.items():
        assert v.shape == (2, 3), k
        assert np.all(np.isfinite(v)), k
    act = reinforce.make_act(config, spec)
    p0 = jax.tree.map(lambda x: x[0], reinforce.AGENT.params(state))
    greedy = lambda k, p, o: act(k, p, o, True)
    r = evaluation.evaluate(jax.random.key(2), greedy, p0, env, env_params, 4)
    assert r.shape == (4,) and np.all(r >= 1)


def test_update_step_does_not_retrace(cartpole):
    env, env_params, spec = cartpole
    config = reinforce.ReinforceConfig(num_envs=2, num_steps=8, hidden_size=8, total_steps=64)
    update = loop.update_fn(reinforce.AGENT, config, spec, env, env_params, False)
    traces = []

    def step(carry):
        traces.append(1)
        return update(carry)

    step = jax.jit(step)
    carry = loop.init_fn(reinforce.AGENT, config, spec, env, env_params)(jax.random.key(0))
    for _ in range(3):
        carry, _ = step(carry)
    assert len(traces) == 1


def test_validate_rejects_continuous_env():
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(base.ConfigError, match="--agent reinforce"):
        reinforce.ReinforceConfig().validate(envs.spec(env, env_params))


def test_validate_rejects_bad_field(cartpole):
    with pytest.raises(base.ConfigError, match="--baseline-lr"):
        reinforce.ReinforceConfig(baseline_lr=0.0).validate(cartpole[2])


def test_no_baseline_flag_name():
    assert "baseline" in reinforce.ReinforceConfig.__dataclass_fields__
    assert reinforce.AGENT.presets["seed"]["lr"] == 3e-2


@pytest.mark.slow
def test_learns_cartpole(cartpole):
    env, env_params, spec = cartpole
    config = reinforce.ReinforceConfig(**reinforce.AGENT.presets["default"])
    train = jax.jit(jax.vmap(loop.make_train(reinforce.AGENT, config, env, env_params)))
    keys = jax.random.split(jax.random.key(0), 8)
    carry, _ = train(keys)
    act = reinforce.make_act(config, spec)
    greedy = lambda k, p, o: act(k, p, o, True)
    ev = jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, env, env_params, 100))
    mean = ev(keys, carry.agent.params["policy"]).mean(-1)
    assert int((mean >= spec.solved_threshold).sum()) >= 7, mean
