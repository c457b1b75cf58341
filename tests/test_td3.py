"""Tests for rljax.agents.td3: twin minimum target, smoothing clip, delayed updates."""

from __future__ import annotations

import bitwise
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation
from rljax.agents import AGENTS, ConfigError, ddpg, off_policy, td3
from rljax.run import loop

ENV, ENV_PARAMS = envs.make("Pendulum-v1")
SPEC = envs.spec(ENV, ENV_PARAMS)
TINY = dict(
    total_steps=64, buffer_size=64, batch_size=8, learning_starts=8, hidden_size=8, num_layers=1
)


def tiny(**kw) -> td3.TD3Config:
    return td3.TD3Config(**{**TINY, **kw})


def batch_of(key, n=16, terminated=None):
    ko, ka, kr, kn = jax.random.split(key, 4)
    return off_policy.Experience(
        obs=jax.random.normal(ko, (n, 3)),
        action=jax.random.uniform(ka, (n, 1), minval=-2, maxval=2),
        reward=jax.random.normal(kr, (n,)),
        next_obs=jax.random.normal(kn, (n, 3)),
        terminated=jnp.zeros((n,), bool) if terminated is None else jnp.asarray(terminated),
    )


def test_defaults_are_td3():
    c = td3.TD3Config()
    assert (c.num_critics, c.policy_delay, c.target_noise, c.target_noise_clip) == (2, 2, 0.2, 0.5)
    assert AGENTS["td3"].config is td3.TD3Config and AGENTS["td3"].name == "td3"


def test_twin_critics_are_distinct_and_target_is_their_minimum():
    config = tiny(target_noise=0.0, gamma=0.9)
    state = td3.AGENT.init(jax.random.key(0), config, SPEC)
    nets = ddpg.make_networks(config, SPEC)
    leaves = jax.tree.leaves(state.critic_params)
    assert all(x.shape[0] == 2 for x in leaves)
    assert not all(jnp.allclose(x[0], x[1]) for x in leaves)  # independently initialised
    batch = batch_of(jax.random.key(1), n=6, terminated=[0, 1, 0, 0, 0, 0])
    y = ddpg.td_target(jax.random.key(2), config, nets, SPEC, state, batch)
    mu = nets.actor(state.target_actor_params, batch.next_obs)
    q = np.asarray(nets.critic(state.target_critic_params, batch.next_obs, mu))  # [2, B]
    assert (q[0] != q[1]).all()
    term = np.asarray(batch.terminated, np.float64)
    expected = np.asarray(batch.reward) + 0.9 * (1 - term) * np.minimum(q[0], q[1])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_each_critic_gets_its_own_gradient():
    config = tiny()
    state = td3.AGENT.init(jax.random.key(0), config, SPEC)
    nets = ddpg.make_networks(config, SPEC)
    batch = batch_of(jax.random.key(1))
    y = jnp.ones((16,))
    g = jax.grad(lambda p: off_policy.critic_loss(p, nets, SPEC, batch, y)[0])(state.critic_params)
    for k in range(2):
        own = jax.tree.map(lambda x, k=k: x[k], state.critic_params)
        single = jax.grad(
            lambda p: jnp.mean(0.5 * (y - nets.critic_one(p, batch.obs, batch.action)) ** 2)
        )(own)
        chex.assert_trees_all_close(jax.tree.map(lambda x, k=k: x[k], g), single, rtol=1e-5)


def test_target_smoothing_noise_is_clipped():
    mu = jnp.zeros((10_000, 1))
    a = off_policy.noisy_action(jax.random.key(0), mu, 100.0, 0.5, SPEC)  # huge σ, clip c = 0.5
    half = (SPEC.action_high - SPEC.action_low) / 2
    assert float(jnp.max(jnp.abs(a))) == pytest.approx(0.5 * half)
    a = off_policy.noisy_action(jax.random.key(0), mu + 1.9, 0.2, 0.5, SPEC)  # then the bounds
    assert float(a.max()) <= SPEC.action_high and float(a.min()) >= 1.9 - 0.5 * half - 1e-6
    none = off_policy.noisy_action(jax.random.key(0), mu + 0.3, 0.0, 0.5, SPEC)
    np.testing.assert_array_equal(none, mu + 0.3)


@pytest.mark.parametrize("delay", [2, 3])
def test_delayed_actor_and_target_updates(delay):
    config = tiny(policy_delay=delay, learning_starts=8 * delay, total_steps=64 * delay, tau=0.1)
    steps = {
        warmup: jax.jit(loop.update_fn(td3.AGENT, config, SPEC, ENV, ENV_PARAMS, warmup))
        for warmup in (True, False)
    }
    carry = loop.init_fn(td3.AGENT, config, SPEC, ENV, ENV_PARAMS)(jax.random.key(0))
    for _ in range(config.warmup_updates(SPEC)):
        carry, _ = steps[True](carry)
    state = carry.agent
    new = steps[False](carry)[0].agent
    # One update: `delay` env steps and critic steps, ONE actor step and ONE target update.
    assert int(new.env_steps - state.env_steps) == delay == config.steps_per_update(SPEC)
    assert int(new.critic_opt_state[0].count) == delay
    assert int(new.actor_opt_state[0].count) == 1
    tau = 0.1
    for online, old, tgt in [
        (new.actor_params, state.target_actor_params, new.target_actor_params),
        (new.critic_params, state.target_critic_params, new.target_critic_params),
    ]:
        expected = jax.tree.map(lambda o, t: tau * o + (1 - tau) * t, online, old)
        chex.assert_trees_all_close(tgt, expected, atol=1e-6)


@pytest.mark.parametrize(
    "env_name, kw, flag",
    [
        ("CartPole-v1", {}, "--agent td3"),
        ("Pendulum-v1", dict(batch_size=128, buffer_size=64), "--batch-size"),
        ("Pendulum-v1", dict(tau=-0.1), "--tau"),
        ("Pendulum-v1", dict(tau=2.0), "--tau"),
        ("Pendulum-v1", dict(learning_starts=4), "--learning-starts"),
        ("Pendulum-v1", dict(num_critics=1), "--num-critics"),
        ("Pendulum-v1", dict(policy_delay=0), "--policy-delay"),
        ("Pendulum-v1", dict(target_noise=float("inf")), "--target-noise"),
    ],
)
def test_validate_rejects_bad_input(env_name, kw, flag):
    env, env_params = envs.make(env_name)
    with pytest.raises(ConfigError, match=flag):
        tiny(**kw).validate(envs.spec(env, env_params))


def test_presets_validate():
    for preset in td3.AGENT.presets.values():
        td3.TD3Config(**preset).validate(SPEC)


def test_make_train_jit_vmap_two_seeds():
    config = tiny(total_steps=40)
    keys = jax.random.split(jax.random.key(0), 2)
    train = loop.make_train(td3.AGENT, config, ENV, ENV_PARAMS)
    carry, metrics = jax.jit(jax.vmap(train))(keys)
    state = carry.agent
    n = config.total_steps // config.steps_per_update(SPEC)
    assert metrics["critic_loss"].shape == (2, n)
    np.testing.assert_array_equal(state.env_steps, [40, 40])
    np.testing.assert_array_equal(state.update, [n, n])
    chex.assert_tree_all_finite(state.actor_params)
    assert not jnp.allclose(carry.obs[0], carry.obs[1])


@pytest.mark.slow
def test_td3_learns_pendulum():
    config = td3.TD3Config()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(8))
    carry, _ = jax.jit(jax.vmap(loop.make_train(td3.AGENT, config, ENV, ENV_PARAMS)))(keys)
    act = td3.AGENT.make_act(config, SPEC)
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    ev = jax.jit(jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, ENV, ENV_PARAMS, 100)))
    returns = np.asarray(ev(keys, td3.AGENT.params(carry.agent)).mean(-1))
    assert (returns >= -200).sum() >= 7, returns


def test_runner_compiler_options_only_for_replay_agents_on_cpu():
    replay = {
        "xla_cpu_copy_insertion_use_region_analysis": True,
        "xla_cpu_prefer_vector_width": 512,
    }
    for name in ("td3", "ddpg", "sac"):
        assert loop.compiler_options(AGENTS[name], "cpu") == replay, name
        assert loop.compiler_options(AGENTS[name], "gpu") == {}, name
    for name in ("a2c", "ppo", "reinforce", "td_actor_critic"):
        assert loop.compiler_options(AGENTS[name], "cpu") == {}, name


def _td3_run_compiled(*options: dict):
    """A short two-seed TD3 run compiled with ``options`` (merged), its final carry."""
    config = tiny(total_steps=60)
    keys = jax.random.split(jax.random.key(3), 2)
    lowered = jax.jit(jax.vmap(loop.make_train(td3.AGENT, config, ENV, ENV_PARAMS))).lower(keys)
    carry = lowered.compile(
        {k: v for o in (bitwise.FUSION_EMITTERS, *options) for k, v in o.items()}
    )(keys)
    data = lambda x: (  # noqa: E731
        jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    )
    return jax.tree.map(data, carry)


def test_runner_region_analysis_changes_no_bit():
    """Region analysis only removes copies: the same run compiled both ways is bitwise equal."""
    chex.assert_trees_all_equal(_td3_run_compiled(), _td3_run_compiled(loop.REGION_ANALYSIS))


def test_runner_wide_vectors_change_only_rounding():
    """512-bit vectors reorder vectorised arithmetic: the same run agrees to float rounding."""
    plain = _td3_run_compiled(loop.REGION_ANALYSIS)
    wide = _td3_run_compiled(loop.REGION_ANALYSIS, loop.WIDE_VECTORS)
    floats = lambda t: [x for x in jax.tree.leaves(t) if jnp.issubdtype(x.dtype, jnp.floating)]  # noqa: E731
    for a, b in zip(floats(plain), floats(wide), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
