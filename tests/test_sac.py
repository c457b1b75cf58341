"""Tests for SAC: its losses against numpy, the tanh-squashed Gaussian, the agent's updates."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation, losses, networks
from rljax.agents import AGENTS, ConfigError, off_policy, sac
from rljax.run import loop

PENDULUM = envs.make("Pendulum-v1")
CARTPOLE = envs.make("CartPole-v1")
TINY = dict(
    total_steps=64, buffer_size=64, batch_size=8, learning_starts=8, hidden_size=8, num_layers=1
)


ONE3 = jnp.ones(3)


def spec_of(env):
    return envs.spec(*env)


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def rand(key, *shape):
    return jax.random.normal(key, shape)


# ---- losses against numpy


def test_soft_q_target_matches_numpy_and_takes_the_minimum():
    k = jax.random.split(jax.random.key(0), 4)
    r, logp, q = rand(k[0], 5), rand(k[1], 5), rand(k[2], 3, 5)
    disc = jnp.array([0.99, 0.0, 0.99, 0.99, 0.5])
    y = losses.soft_q_target(r, disc, q, logp, 0.3)
    expected = np.asarray(r) + np.asarray(disc) * (
        np.asarray(q).min(0) - 0.3 * np.asarray(logp, np.float64)
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # No gradient into anything: the target critics, the policy's log-prob, α.
    g = jax.grad(lambda *a: losses.soft_q_target(*a).sum(), argnums=(0, 2, 3, 4))(
        r, disc, q, logp, 0.3
    )
    for x in g:
        np.testing.assert_array_equal(x, 0.0)


def test_soft_q_target_discrete_is_the_exact_expectation():
    k = jax.random.split(jax.random.key(1), 4)
    r, logits, q = rand(k[0], 4), rand(k[1], 4, 3), rand(k[2], 2, 4, 3)
    disc = jnp.full((4,), 0.9)
    y = losses.soft_q_target_discrete(r, disc, q, logits, 0.2)
    logp = np_log_softmax(logits)
    v = (np.exp(logp) * (np.asarray(q, np.float64).min(0) - 0.2 * logp)).sum(-1)
    np.testing.assert_allclose(y, np.asarray(r) + 0.9 * v, rtol=1e-5, atol=1e-6)


def test_sac_actor_loss_matches_numpy_and_stops_alpha():
    k = jax.random.split(jax.random.key(2), 2)
    logp, q = rand(k[0], 6), rand(k[1], 2, 6)
    loss = losses.sac_actor_loss(logp, q, 0.5)
    expected = np.mean(0.5 * np.asarray(logp) - np.asarray(q).min(0))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    g_logp, g_q, g_alpha = jax.grad(losses.sac_actor_loss, argnums=(0, 1, 2))(logp, q, 0.5)
    np.testing.assert_allclose(g_logp, 0.5 / 6, rtol=1e-6)
    # The gradient reaches only the smaller critic of each pair; none reaches α.
    q_np = np.asarray(q)
    np.testing.assert_allclose(g_q, -(q_np == q_np.min(0)).astype(float) / 6, rtol=1e-6)
    assert float(g_alpha) == 0.0


def test_sac_actor_loss_discrete_matches_numpy_no_gradient_to_critics():
    k = jax.random.split(jax.random.key(3), 2)
    logits, q = rand(k[0], 5, 4), rand(k[1], 2, 5, 4)
    loss = losses.sac_actor_loss_discrete(logits, q, 0.1)
    logp = np_log_softmax(logits)
    expected = (np.exp(logp) * (0.1 * logp - np.asarray(q, np.float64).min(0))).sum(-1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    g_q, g_alpha = jax.grad(losses.sac_actor_loss_discrete, argnums=(1, 2))(logits, q, 0.1)
    np.testing.assert_array_equal(g_q, 0.0)
    assert float(g_alpha) == 0.0


def test_temperature_loss_gradient_moves_alpha_towards_the_target_entropy():
    logp = jnp.array([-0.5, 0.2, -1.0])
    log_alpha = jnp.array(0.3)
    loss, (g_alpha, g_logp) = jax.value_and_grad(losses.temperature_loss, argnums=(0, 1))(
        log_alpha, logp, -1.0
    )
    mean = float(np.mean(np.asarray(logp) - 1.0))
    np.testing.assert_allclose(loss, -0.3 * mean, rtol=1e-6)
    np.testing.assert_allclose(g_alpha, -mean, rtol=1e-6)
    np.testing.assert_array_equal(g_logp, 0.0)
    # Entropy −E[log π] = 0.43 is above the target −1, so α must fall: the gradient is > 0.
    assert float(g_alpha) > 0


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: losses.soft_q_target(ONE3, ONE3, ONE3, ONE3, 1.0), "q_next_t"),
        (lambda: losses.soft_q_target(ONE3, jnp.ones(4), ONE3[None], ONE3, 1.0), "discount_t"),
        (lambda: losses.sac_actor_loss(jnp.ones(3), jnp.ones((2, 4)), 1.0), "q_t"),
        (lambda: losses.temperature_loss(jnp.ones(2), jnp.ones(3), 1.0), "log_alpha"),
        (lambda: losses.sac_actor_loss_discrete(jnp.ones(3), jnp.ones((2, 3)), 1.0), "logits_t"),
    ],
)  # fmt: skip
def test_losses_name_the_bad_argument(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


# ---- the tanh-squashed Gaussian


def test_tanh_gaussian_log_prob_is_the_change_of_variables():
    """log p(a) = log N(u) − log|da/du|, with da/du taken by central differences in float64."""
    low, high = -2.0, 2.0
    mean, log_std = np.array([0.3, -1.2]), np.array([-0.4, 0.5])
    u = np.array([[0.1, -2.5], [1.7, 3.0], [-0.8, 0.0]])

    def a_of(x):
        return low + (np.tanh(x) + 1.0) * (high - low) / 2.0

    eps = 1e-6
    dadu = (a_of(u + eps) - a_of(u - eps)) / (2 * eps)
    std = np.exp(log_std)
    log_n = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    expected = (log_n - np.log(dadu)).sum(-1)
    got = networks.tanh_gaussian_log_prob(mean, log_std, u, low, high)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The same through the action itself.
    got_a = networks.tanh_gaussian_log_prob_of_action(mean, log_std, a_of(u), low, high)
    np.testing.assert_allclose(got_a, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("u", [9.0, 20.0, 100.0, -20.0, -100.0])
def test_tanh_gaussian_log_prob_is_finite_for_large_pre_tanh_values(u):
    # Exact in float64: log(1 − tanh²u) = log 4 − 2|u| − 2·log(1 + e^{−2|u|}).
    log1m = np.log(4.0) - 2 * abs(u) - 2 * np.log1p(np.exp(-2 * abs(u)))
    np.testing.assert_allclose(networks.log1m_tanh_sq(jnp.float32(u)), log1m, rtol=1e-6)
    lp = networks.tanh_gaussian_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.full((1,), u), -1, 1)
    expected = -0.5 * u * u - 0.5 * np.log(2 * np.pi) - log1m
    assert np.isfinite(lp)
    np.testing.assert_allclose(lp, expected, rtol=1e-5)


def test_tanh_gaussian_log_prob_of_actions_at_the_bounds_is_finite():
    a = jnp.array([[-2.0], [-2.0 + 1e-7], [2.0 - 1e-7], [2.0]])
    lp = networks.tanh_gaussian_log_prob_of_action(jnp.zeros(1), jnp.zeros(1), a, -2.0, 2.0)
    assert np.isfinite(lp).all()
    g = jax.grad(
        lambda m: networks.tanh_gaussian_log_prob_of_action(m, jnp.zeros(1), a, -2, 2).sum()
    )
    assert np.isfinite(g(jnp.zeros(1))).all()


def test_tanh_gaussian_sample_is_in_bounds_reparameterised_and_consistent():
    mean, log_std = jnp.array([0.5, -3.0]), jnp.array([0.0, 1.0])
    keys = jax.random.split(jax.random.key(4), 4000)
    a, lp = jax.vmap(lambda k: networks.tanh_gaussian_sample(k, mean, log_std, -2.0, 2.0))(keys)
    assert a.shape == (4000, 2) and lp.shape == (4000,)
    assert float(a.min()) >= -2.0 and float(a.max()) <= 2.0
    # The returned log-prob equals the log-prob of the returned action (away from the bounds).
    inside = np.all(np.abs(np.asarray(a)) < 1.99, axis=1)
    lp_a = networks.tanh_gaussian_log_prob_of_action(mean, log_std, a, -2.0, 2.0)
    np.testing.assert_allclose(np.asarray(lp)[inside], np.asarray(lp_a)[inside], atol=2e-3)
    # Reparameterised: the action has a gradient with respect to the mean.
    g = jax.grad(lambda m: networks.tanh_gaussian_sample(keys[0], m, log_std, -2, 2)[0].sum())(mean)
    assert np.all(np.asarray(g) > 0)
    np.testing.assert_allclose(networks.tanh_gaussian_mode(mean, -2.0, 2.0), 2 * np.tanh(mean))


# ---- the agent


def tiny(**kw) -> sac.SACConfig:
    return sac.SACConfig(**{**TINY, **kw})


def test_registered_and_defaults():
    assert AGENTS["sac"] is sac.AGENT
    c = sac.SACConfig()
    assert (c.num_critics, c.autotune) == (2, True)
    assert c.target_entropy(spec_of(PENDULUM)) == -1.0
    np.testing.assert_allclose(c.target_entropy(spec_of(CARTPOLE)), np.log(2.0))


@pytest.mark.parametrize("env", [PENDULUM, CARTPOLE], ids=["box", "discrete"])
def test_twin_critics_are_distinct_and_the_target_is_their_minimum(env):
    spec = spec_of(env)
    config = tiny(gamma=0.9)
    state = sac.init(jax.random.key(0), config, spec)
    leaves = jax.tree.leaves(state.critic_params)
    assert all(x.shape[0] == 2 for x in leaves)
    assert not all(np.allclose(x[0], x[1]) for x in leaves)
    nets = sac.make_networks(config, spec)
    n = 6
    kobs, knext, ka = jax.random.split(jax.random.key(1), 3)
    obs = rand(kobs, n, *spec.obs_shape)
    nxt = rand(knext, n, *spec.obs_shape)
    if spec.discrete:
        action = jax.random.randint(ka, (n,), 0, spec.num_actions)
    else:
        action = jax.random.uniform(ka, (n, 1), minval=-2, maxval=2)
    term = jnp.array([0, 1, 0, 0, 0, 0], bool)
    batch = off_policy.Experience(obs, action, jnp.arange(n, dtype=jnp.float32), nxt, term)
    alpha = jnp.asarray(0.2)
    key = jax.random.key(2)
    y = sac.td_target(key, config, nets, spec, state, batch, alpha)
    disc = 0.9 * (1 - np.asarray(term, np.float64))
    if spec.discrete:
        logp = np_log_softmax(nets.actor(state.actor_params, nxt))
        q = np.asarray(nets.critic(state.target_critic_params, nxt), np.float64)
        assert (q[0] != q[1]).any()
        v = (np.exp(logp) * (q.min(0) - 0.2 * logp)).sum(-1)
    else:
        a_next, logp = sac.sample(key, nets, state.actor_params, nxt, spec)
        q = np.asarray(nets.critic(state.target_critic_params, nxt, a_next), np.float64)
        assert (q[0] != q[1]).all()
        v = q.min(0) - 0.2 * np.asarray(logp)
    np.testing.assert_allclose(y, np.arange(n) + disc * v, rtol=1e-5, atol=1e-5)
    # The critic loss sends gradient to the critics only, never to the target critics.
    g = jax.grad(
        lambda target: off_policy.critic_loss(
            state.critic_params,
            nets,
            spec,
            batch,
            sac.td_target(
                key, config, nets, spec, state._replace(target_critic_params=target), batch, alpha
            ),
        )[0]
    )(state.target_critic_params)
    for x in jax.tree.leaves(g):
        np.testing.assert_array_equal(x, 0.0)


def _carries(agent, config, env, n=2):
    spec = spec_of(env)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n))
    return jax.vmap(loop.init_fn(agent, config, spec, *env))(keys)


@pytest.mark.parametrize("env", [PENDULUM, CARTPOLE], ids=["box", "discrete"])
def test_learning_update_moves_targets_by_tau_and_alpha(env):
    spec = spec_of(env)
    config = tiny(tau=0.25, learning_starts=8, batch_size=8)
    carries = _carries(sac.AGENT, config, env)
    warm = jax.jit(jax.vmap(loop.update_fn(sac.AGENT, config, spec, *env, True)))
    for _ in range(8):
        carries, _ = warm(carries)
    s0 = carries.agent
    np.testing.assert_array_equal(s0.replay.size, [8, 8])
    update = jax.jit(jax.vmap(loop.update_fn(sac.AGENT, config, spec, *env, False)))
    carries, metrics = update(carries)
    s1 = carries.agent
    expected = jax.tree.map(
        lambda c, t: 0.25 * c + 0.75 * t, s1.critic_params, s0.target_critic_params
    )
    chex.assert_trees_all_close(s1.target_critic_params, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(s1.log_alpha, s0.log_alpha)
    for k in sac.METRICS:
        assert np.isfinite(metrics[k]).all(), k
    np.testing.assert_allclose(metrics["alpha"], np.exp(s0.log_alpha), rtol=1e-6)
    if spec.discrete:
        return
    # A fixed α stays where it was set.
    fixed = tiny(autotune=False, alpha=0.05)
    carries = _carries(sac.AGENT, fixed, env)
    warm = jax.jit(jax.vmap(loop.update_fn(sac.AGENT, fixed, spec, *env, True)))
    for _ in range(8):
        carries, _ = warm(carries)
    update = jax.jit(jax.vmap(loop.update_fn(sac.AGENT, fixed, spec, *env, False)))
    carries, metrics = update(carries)
    np.testing.assert_allclose(metrics["alpha"], 0.05, rtol=1e-6)


def test_gradient_steps_run_in_order_and_warmup_only_stores():
    spec = spec_of(PENDULUM)
    config = tiny(gradient_steps=3, num_steps=2)
    carries = _carries(sac.AGENT, config, PENDULUM)
    collect = loop.collect_fn(sac.AGENT, config, spec, *PENDULUM, True)
    traj = jax.vmap(collect)(carries)[-1]
    assert traj.reward.shape == (2, 2, 1)
    learn = jax.vmap(loop.learn_fn(sac.AGENT, config, spec, warmup=True))
    assert "dot_general" not in str(jax.make_jaxpr(learn)(carries, traj))
    new, _ = jax.jit(learn)(carries, traj)
    chex.assert_trees_all_equal(new.agent.actor_params, carries.agent.actor_params)
    np.testing.assert_array_equal(new.agent.replay.size, [2, 2])
    # Three gradient steps are three single steps, each on its own key.
    state = jax.tree.map(lambda x: x[0], new.agent)
    t0 = jax.tree.map(lambda x: x[0], traj)
    learned, _ = jax.jit(lambda s, t: sac.learn_step(s, t, config, spec))(state, t0)
    buffer = off_policy.buffer(config)
    s = state._replace(replay=buffer.add(state.replay, off_policy.experience(t0)))
    key, *keys = jax.random.split(s.key, 4)
    s = s._replace(key=key)
    step = jax.jit(lambda s, k: sac.gradient_step(s, k, config, spec))
    for k in keys:
        s, _ = step(s, k)
    chex.assert_trees_all_close(learned.actor_params, s.actor_params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("env", [PENDULUM, CARTPOLE], ids=["box", "discrete"])
def test_act_greedy_is_the_mode(env):
    spec = spec_of(env)
    config = tiny()
    state = sac.init(jax.random.key(0), config, spec)
    obs = rand(jax.random.key(1), 7, *spec.obs_shape)
    act = sac.make_act(config, spec)
    greedy = act(jax.random.key(2), state.actor_params, obs, True)
    nets = sac.make_networks(config, spec)
    if spec.discrete:
        np.testing.assert_array_equal(greedy, jnp.argmax(nets.actor(state.actor_params, obs), -1))
    else:
        mean, _ = nets.actor(state.actor_params, obs)
        np.testing.assert_allclose(greedy, 2.0 * jnp.tanh(mean), atol=1e-6)
        sampled = act(jax.random.key(2), state.actor_params, obs, False)
        assert not np.allclose(sampled, greedy)


@pytest.mark.parametrize(
    "kw, flag",
    [
        (dict(batch_size=128, buffer_size=64), "--batch-size"),
        (dict(tau=0.0), "--tau"),
        (dict(tau=1.5), "--tau"),
        (dict(alpha=-0.1), "--alpha"),
        (dict(gradient_steps=0), "--gradient-steps"),
        (dict(lr=float("nan")), "--lr"),
    ],
)
def test_validate_rejects_bad_input(kw, flag):
    with pytest.raises(ConfigError, match=flag):
        tiny(**kw).validate(spec_of(PENDULUM))


def test_discrete_target_entropy_ratio_must_be_a_fraction():
    with pytest.raises(ConfigError, match="--target-entropy-ratio"):
        tiny(target_entropy_ratio=1.5).validate(spec_of(CARTPOLE))
    tiny(target_entropy_ratio=1.5).validate(spec_of(PENDULUM))  # −1.5·|A| is fine


def test_presets_validate():
    for name, preset in sac.AGENT.presets.items():
        env = CARTPOLE if name == "cartpole" else PENDULUM
        sac.SACConfig(**preset).validate(spec_of(env))


@pytest.mark.slow
def test_sac_learns_pendulum():
    env = PENDULUM
    spec = spec_of(env)
    config = sac.SACConfig(total_steps=10_000)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(4))
    carry, _ = jax.jit(jax.vmap(loop.make_train(sac.AGENT, config, *env)))(keys)
    act = sac.make_act(config, spec)
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    ev = jax.jit(jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, *env, 20)))
    returns = np.asarray(ev(keys, carry.agent.actor_params).mean(-1))
    assert (returns >= -200).sum() >= 3, returns


@pytest.mark.parametrize("env_name", ["gymnasium:Pendulum-v1", "gymnasium:CartPole-v1"])
def test_cli_trains_sac_through_gymnasium(env_name, tmp_path):
    """Box and Discrete actions on the host path, with normalised observations."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--agent", "sac", "--env", env_name, "--num-seeds", "2", "--normalize-obs"]
    argv += ["--total-steps", "64", "--learning-starts", "16", "--batch-size", "16"]
    argv += ["--hidden-size", "8", "--num-chunks", "2", "--eval-episodes", "1", "--quiet"]
    assert train.main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps_learned"] == [64, 64]
    assert all(np.isfinite(summary["eval_returns"]))
    assert "alpha" in (out / "metrics.csv").read_text().splitlines()[0]


def test_sweep_over_float_settings_compiles_once(tmp_path, monkeypatch):
    import csv
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import sweep

    traces = []
    agent = AGENTS["sac"]

    def counting_learn_step(state, traj, config, spec, warmup=False):
        traces.append(warmup)  # once per trace of each phase's update
        return agent.learn_step(state, traj, config, spec, warmup)

    monkeypatch.setitem(AGENTS, "sac", agent._replace(learn_step=counting_learn_step))
    out = tmp_path / "sweep"
    argv = ["--agent", "sac", "--env", "Pendulum-v1", "--num-seeds", "2", "--total-steps", "272"]
    argv += ["--preset", "rejax", "--num-chunks", "1", "--eval-episodes", "1", "--quiet"]
    argv += ["--grid", "tau=0.01,0.05", "alpha=0.1,1.0", "--out", str(out)]
    assert sweep.main(argv) == 0
    assert sorted(traces) == [False, True]  # 4 settings x 2 seeds: one trace per phase
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 4 and all(np.isfinite(float(r["iqm"])) for r in rows)
