"""PPO: the clipped objective, shuffling, continuous log-probs, config checks, training."""

from __future__ import annotations

import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from semantics import ended_batch, np_gae

from rljax import envs, evaluation, networks, stats
from rljax.agents import AGENTS, ConfigError, base, optim, ppo
from rljax.run import loop


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def pendulum():
    return envs.make("Pendulum-v1")


def _tiny(**kw):
    return ppo.PPOConfig(
        **{"total_steps": 128, "num_envs": 4, "num_steps": 16, "num_minibatches": 2, **kw}
    )


def _batch(rng, b=8, a=3):
    """A fixed minibatch for a fake network whose params are the logits and values."""
    params = {"logits": rng.normal(size=(b, a)), "v": rng.normal(size=b)}
    old_logits = params["logits"] + rng.normal(scale=0.5, size=(b, a))
    action = rng.integers(0, a, size=b)
    old_logp = old_logits[np.arange(b), action] - np.log(np.exp(old_logits).sum(1))
    value = params["v"] + rng.normal(scale=0.5, size=b)
    adv = rng.normal(size=b)
    batch = ppo.PPOBatch(
        obs=np.zeros((b, 1)),
        action=action,
        log_prob=old_logp,
        value=value,
        advantage=adv,
        target=adv + value,
    )
    to32 = lambda x: jnp.asarray(x, jnp.int32 if x.dtype.kind == "i" else jnp.float32)
    return jax.tree.map(to32, params), jax.tree.map(to32, batch)


def _numpy_loss(params, batch, eps, vf, ent, normalize, clip_value):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    bt = ppo.PPOBatch(*(np.asarray(x, np.float64) for x in batch))
    log_pi = p["logits"] - np.log(np.exp(p["logits"]).sum(1, keepdims=True))
    logp = log_pi[np.arange(len(bt.action)), bt.action.astype(int)]
    adv = bt.advantage
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(logp - bt.log_prob)
    actor = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv))
    v, old, g = p["v"], bt.value, bt.target
    if clip_value:
        clipped = old + np.clip(v - old, -eps, eps)
        critic = 0.5 * np.mean(np.maximum((v - g) ** 2, (clipped - g) ** 2))
    else:
        critic = 0.5 * np.mean((v - g) ** 2)
    entropy = -np.mean((np.exp(log_pi) * log_pi).sum(1))
    kl = np.mean(ratio - 1 - np.log(ratio))
    clip_frac = np.mean(np.abs(ratio - 1) > eps)
    return actor + vf * critic - ent * entropy, actor, critic, entropy, kl, clip_frac


@pytest.mark.parametrize("normalize,clip_value", [(True, True), (False, False), (True, False)])
def test_ppo_loss_matches_numpy(normalize, clip_value):
    params, batch = _batch(np.random.default_rng(0))
    config = ppo.PPOConfig(
        clip_eps=0.1,
        vf_coef=0.7,
        ent_coef=0.05,
        normalize_advantages=normalize,
        clip_value_loss=clip_value,
    )
    apply = lambda p, obs: (p["logits"], p["v"])
    loss, info = jax.jit(lambda p, b: ppo.ppo_loss(apply, p, b, config))(params, batch)
    total, actor, critic, entropy, kl, clip_frac = _numpy_loss(
        params, batch, 0.1, 0.7, 0.05, normalize, clip_value
    )
    np.testing.assert_allclose(loss, total, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["actor_loss"], actor, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["critic_loss"], critic, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(info["approx_kl"], kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(info["clip_fraction"], clip_frac)
    assert 0.0 < clip_frac < 1.0  # the fixed batch has clipped and unclipped samples


def test_clipped_samples_give_no_policy_gradient():
    """A sample whose ratio left [1 − ε, 1 + ε] in the advantage's direction stops pushing."""
    eps = 0.2
    config = ppo.PPOConfig(clip_eps=eps, vf_coef=0.0, ent_coef=0.0, normalize_advantages=False)
    logits = jnp.zeros((4, 2))
    # Ratios exp(+0.5) > 1 + ε and exp(−0.5) < 1 − ε, with A > 0 and A < 0.
    old_logp = jnp.log(0.5) + jnp.array([-0.5, 0.5, -0.5, 0.5])
    adv = jnp.array([1.0, 1.0, -1.0, -1.0])
    batch = ppo.PPOBatch(
        obs=jnp.zeros((4, 1)),
        action=jnp.zeros(4, jnp.int32),
        log_prob=old_logp,
        value=jnp.zeros(4),
        advantage=adv,
        target=jnp.zeros(4),
    )
    apply = lambda p, obs: (p, jnp.zeros(4))
    grad = jax.grad(lambda p: ppo.ppo_loss(apply, p, batch, config)[0])(logits)
    norms = np.abs(np.asarray(grad)).sum(1)
    # Row 0: ratio > 1+ε, A > 0 -> clipped; row 3: ratio < 1−ε, A < 0 -> clipped.
    assert norms[0] == 0.0 and norms[3] == 0.0
    assert norms[1] > 0.0 and norms[2] > 0.0


def test_minibatch_indices_reshuffle_every_epoch():
    idx = np.asarray(optim.minibatch_indices(jax.random.key(0), 4, 32, 4))
    assert idx.shape == (4, 4, 8)
    flat = idx.reshape(4, 32)
    for e in range(4):
        np.testing.assert_array_equal(np.sort(flat[e]), np.arange(32))  # a permutation
    assert len({tuple(row) for row in flat}) == 4  # a different one each epoch
    assert not any((row == np.arange(32)).all() for row in flat)


def _np_permutation(key, n):
    """optim.permutation's algorithm in numpy on the same random bits: each round a stable
    argsort by the bits above the index bits."""
    index_bits = max(1, (n - 1).bit_length())
    rounds = max(1, int(np.ceil(3 * np.log2(n) / (32 - index_bits))))
    perm = np.arange(n)
    for _ in range(rounds):
        key, sub = jax.random.split(key)
        bits = np.asarray(jax.random.bits(sub, (n,), jnp.uint32))
        perm = perm[np.argsort(bits >> index_bits, kind="stable")]
    return perm, rounds


@pytest.mark.parametrize("n", [1, 2, 5, 100, 500, 5000])
def test_permutation_vs_numpy(n):
    key = jax.random.key(n)
    perm = jax.jit(optim.permutation, static_argnums=1)(key, n)
    assert perm.shape == (n,) and perm.dtype == jnp.int32
    ref, rounds = _np_permutation(key, n)
    np.testing.assert_array_equal(np.asarray(perm), ref)
    assert rounds == {1: 1, 2: 1, 5: 1, 100: 1, 500: 2, 5000: 2}[n]


def test_permutation_is_uniform():
    """All 24 orders of 4 items equally often over 48,000 keys (chi-square), and every item
    equally often at every position of 500 (over 2,000 keys)."""
    from scipy import stats as sps

    keys = jax.random.split(jax.random.key(0), 48_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: optim.permutation(k, 4)))(keys))
    _, counts = np.unique(perms @ np.array([64, 16, 4, 1]), return_counts=True)
    assert len(counts) == 24
    assert sps.chisquare(counts).pvalue > 1e-3
    keys = jax.random.split(jax.random.key(1), 2_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: optim.permutation(k, 500)))(keys))
    mean_position = np.argsort(perms, axis=1).mean(0)  # where each item went, on average
    np.testing.assert_allclose(mean_position, 249.5, atol=4 * 144.3 / np.sqrt(2_000) + 1)


def test_continuous_stores_raw_sample_and_its_log_prob(pendulum):
    """The runner's collection stores PPO's raw Gaussian sample and its log-prob, and the env
    receives the sample clipped to the bounds."""
    env, env_params = pendulum
    spec = envs.spec(env, env_params)
    config = _tiny(init_log_std=1.5)  # σ ≈ 4.5 on bounds ±2: many samples out of bounds
    carry = loop.init_fn(ppo.AGENT, config, spec, env, env_params)(jax.random.key(0))
    state = carry.agent
    collect = loop.collect_fn(ppo.AGENT, config, spec, env, env_params, False)
    _, _, _, traj = jax.jit(collect)(carry)
    assert traj.action.shape == (16, 4, 1)
    assert (jnp.abs(traj.action) > spec.action_high).mean() > 0.2  # raw samples stored
    mean, log_std = ppo._network(config, spec)[0](state.params, traj.obs)[0]
    expected = networks.diag_gaussian(mean, log_std).log_prob(traj.action)
    np.testing.assert_allclose(traj.log_prob, expected, rtol=1e-5, atol=1e-5)
    clipped = networks.diag_gaussian(mean, log_std).log_prob(jnp.clip(traj.action, -2.0, 2.0))
    assert not np.allclose(traj.log_prob, clipped)
    # The env received the clipped action: stepping with it reproduces the stored successor.
    assert np.asarray(jnp.abs(traj.action[0]) > spec.action_high).any()
    update_key = jax.random.split(carry.key)[1]  # as the runner's collection
    env_key = jax.random.split(jax.random.split(update_key, config.num_steps)[0])[1]
    clipped_action = jnp.clip(traj.action[0], spec.action_low, spec.action_high)
    obs, *_ = envs.step(env_key, env, env_params, carry.env_state, clipped_action)
    np.testing.assert_allclose(obs, traj.next_obs[0], rtol=1e-6, atol=1e-6)
    act = ppo.make_act(config, spec)
    greedy = act(jax.random.key(2), state.params, traj.obs[0], True)
    np.testing.assert_allclose(greedy, jnp.clip(mean[0], -2.0, 2.0), rtol=1e-5, atol=1e-7)


def test_num_minibatches_must_divide_the_batch(cartpole):
    spec = envs.spec(*cartpole)
    with pytest.raises(ConfigError, match="--num-minibatches"):
        _tiny(num_envs=4, num_steps=10, num_minibatches=3).validate(spec)
    with pytest.raises(ConfigError, match="one sample per minibatch"):
        _tiny(num_envs=2, num_steps=2, num_minibatches=4).validate(spec)
    with pytest.raises(ConfigError, match="--clip-eps"):
        _tiny(clip_eps=0.0).validate(spec)
    with pytest.raises(ConfigError, match="--gae-lambda"):
        _tiny(gae_lambda=1.5).validate(spec)
    with pytest.raises(ConfigError, match="--total-steps"):
        _tiny(total_steps=32).validate(spec)
    _tiny().validate(spec)


def test_cli_rejects_indivisible_minibatches(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import train

    out = tmp_path / "run"
    argv = ["--agent", "ppo", "--num-envs", "4", "--num-steps", "10", "--num-minibatches", "3"]
    assert train.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--num-minibatches" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("env_name", ["CartPole-v1", "Pendulum-v1"])
def test_train_under_jit_vmap_is_finite(env_name):
    env, env_params = envs.make(env_name)
    spec = envs.spec(env, env_params)
    config = _tiny()
    config.validate(spec)
    keys = jax.random.split(jax.random.key(0), 2)
    train = loop.make_train(ppo.AGENT, config, env, env_params)
    carry, metrics = jax.jit(jax.vmap(train))(keys)
    state = carry.agent
    chex.assert_tree_all_finite(state.params)
    n = config.total_steps // config.steps_per_update(spec)
    for k in ("actor_loss", "critic_loss", "entropy", "approx_kl", "clip_fraction"):
        assert metrics[k].shape == (2, n)
        chex.assert_tree_all_finite(metrics[k])
    assert int(state.update[0]) == n and int(state.env_steps[0]) == n * 64
    assert not np.allclose(
        state.params["actor"]["params"]["Dense_0"]["kernel"][0],
        state.params["actor"]["params"]["Dense_0"]["kernel"][1],
    )
    # The learning rate anneals over exactly n · epochs · minibatches optimiser steps.
    counts = [int(c[0]) for c in jax.tree.leaves(state.opt_state) if c.dtype == jnp.int32]
    assert counts and all(c == n * config.num_epochs * config.num_minibatches for c in counts)


def test_learning_rate_anneals_to_zero(cartpole):
    spec = envs.spec(*cartpole)
    config = _tiny(lr=1e-2, max_grad_norm=0.0)
    steps = 2 * config.num_epochs * config.num_minibatches  # two updates
    opt = ppo.optimizer(config, spec)
    params = jnp.zeros(3)
    state = opt.init(params)
    sizes = []
    for _ in range(steps + 1):
        upd, state = opt.update(jnp.ones(3), state, params)
        sizes.append(float(jnp.abs(upd).max()))
    expected = [1e-2 * max(0.0, 1 - k / steps) for k in range(steps + 1)]
    np.testing.assert_allclose(sizes, expected, rtol=1e-3, atol=1e-9)
    assert sizes[-2] < 1e-2 / steps + 1e-9 and sizes[-1] == 0.0


def test_registered_with_presets(cartpole):
    assert AGENTS["ppo"] is ppo.AGENT
    for name, kw in ppo.AGENT.presets.items():
        env = envs.make("Pendulum-v1") if name == "pendulum" else cartpole
        ppo.PPOConfig(**kw).validate(envs.spec(*env))
    c = ppo.PPOConfig(**ppo.AGENT.presets["cleanrl"])
    assert (c.num_envs, c.num_steps, c.num_epochs, c.num_minibatches) == (4, 128, 4, 4)
    assert (c.lr, c.gamma, c.gae_lambda, c.clip_eps) == (2.5e-4, 0.99, 0.95, 0.2)
    assert (c.ent_coef, c.vf_coef, c.max_grad_norm, c.total_steps) == (0.01, 0.5, 0.5, 500_000)
    assert (c.hidden_size, c.num_layers, c.activation, c.anneal_lr) == (64, 2, "tanh", True)


def _train_and_eval(env_name, preset, num_seeds):
    env, env_params = envs.make(env_name)
    config = ppo.PPOConfig(**ppo.AGENT.presets[preset])
    config.validate(envs.spec(env, env_params))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    carry, _ = jax.jit(jax.vmap(loop.make_train(ppo.AGENT, config, env, env_params)))(keys)
    act = ppo.make_act(config, envs.spec(env, env_params))
    greedy = lambda k, p, o: act(k, p, o, True)
    ev = jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, env, env_params, 100))
    eval_keys = jax.random.split(jax.random.key(1), num_seeds)
    return np.asarray(jax.jit(ev)(eval_keys, carry.agent.params).mean(-1))


@pytest.mark.slow
def test_cartpole_default_preset_solves():
    returns = _train_and_eval("CartPole-v1", "default", 8)
    assert (returns >= 475).sum() >= 7, returns


@pytest.mark.slow
def test_pendulum_preset_iqm():
    returns = _train_and_eval("Pendulum-v1", "pendulum", 8)
    assert stats.iqm(returns) >= -250, returns


def test_advantages_are_truncation_correct_gae(cartpole):
    """``advantages`` is GAE with δₜ = c·rₜ + γ(1 − terminatedₜ)·V(next_obsₜ) − V(obsₜ) and the
    recursion cut where an episode ended (terminated or truncated), against a numpy loop on
    the network's own values. Discounting by ``done`` or bootstrapping from obs[t+1] gives
    another answer on this batch, so the batch pins the semantics."""
    spec = envs.spec(*cartpole)
    gamma, lam, c = 0.9, 0.8, 0.5
    config = ppo.PPOConfig(gamma=gamma, gae_lambda=lam, reward_scale=c)
    params = ppo.init(jax.random.key(3), config, spec).params
    traj = ended_batch(spec)
    adv, v_old = jax.jit(ppo.advantages, static_argnums=(2, 3))(params, traj, config, spec)
    assert adv.shape == v_old.shape == (6, 3)

    apply, _ = base.actor_critic_network(
        spec, config.hidden_size, config.num_layers, config.activation
    )
    v = np.asarray(apply(params, traj.obs)[1], np.float64)
    v_next = np.asarray(apply(params, traj.next_obs)[1], np.float64)
    r = c * np.asarray(traj.reward, np.float64)
    term = np.asarray(traj.terminated, np.float64)
    done = np.asarray(traj.done, np.float64)
    want = np_gae(r, term, done, v, v_next, gamma, lam)
    np.testing.assert_allclose(v_old, v, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(adv, want, rtol=1e-4, atol=1e-5)

    # The two likely mistakes give other advantages on this batch.
    v_succ = np.concatenate([v[1:], v_next[-1:]])  # V(obs[t+1]), V(next_obs) at the cut
    by_done = np_gae(r, done, done, v, v_next, gamma, lam)
    from_obs = np_gae(r, term, done, v, v_succ, gamma, lam)
    for name, wrong in (("discount by done", by_done), ("bootstrap from obs[t+1]", from_obs)):
        assert np.abs(wrong - np.asarray(adv)).max() > 1e-2, name
