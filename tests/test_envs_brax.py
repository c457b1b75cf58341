"""Brax envs behind the gymnax adapter (rljax.envs_brax): gymnax 1.0 semantics and training.

Needs the ``brax`` extra; without it every test here is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax")

from rljax import envs, stats  # noqa: E402
from rljax.agents import ddpg, ppo, sac, td3  # noqa: E402
from rljax.run import loop  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import train  # noqa: E402

PENDULUM = "brax:inverted_pendulum"


@pytest.fixture(scope="module")
def pendulum():
    return envs.make(PENDULUM)


def test_spec_and_registry(pendulum):
    env, params = pendulum
    spec = envs.spec(env, params)
    assert spec == envs.EnvSpec(
        name=PENDULUM,
        obs_shape=(4,),
        discrete=False,
        num_actions=1,
        action_low=-1.0,
        action_high=1.0,
        max_steps=1000,
        solved_threshold=None,
    )
    assert envs.make(PENDULUM)[0] is env  # one env object per name: jits compile once
    hopper, _ = envs.make("brax:hopper:positional")
    assert hopper.name == "brax:hopper:positional" and hopper.brax_env.backend == "positional"
    assert envs.spec(*envs.make("brax:hopper")).num_actions == 3


@pytest.mark.parametrize(
    "name, needle",
    [
        ("brax:hoper", "unknown Brax env; valid: ant, fast, halfcheetah, hopper"),
        ("brax:hopper:nope", "unknown Brax backend 'nope'; valid: generalized"),
    ],
)
def test_bad_names_are_one_line_value_errors(name, needle):
    with pytest.raises(ValueError, match=needle):
        envs.make(name)


def test_termination_when_the_hopper_falls():
    """Full torque on every joint makes the hopper fall well before 1000 steps: terminated,
    not truncated, next_obs (final_observation) is the fallen state, then a fresh episode."""
    env, params = envs.make("brax:hopper")
    num_envs, num_steps = 2, 120
    state, obs0 = envs.reset(jax.random.key(0), env, params, num_envs)
    a = jnp.ones((num_envs, 3))

    def body(state, key):
        obs, state, reward, terminated, truncated, info = envs.step(key, env, params, state, a)
        return state, (obs, terminated, truncated, info["final_observation"], info)

    keys = jax.random.split(jax.random.key(1), num_steps)
    _, (obs, term, trunc, final, info) = jax.jit(lambda s: jax.lax.scan(body, s, keys))(state)
    term, trunc = np.asarray(term), np.asarray(trunc)
    assert not trunc.any()
    for i in range(num_envs):
        ends = np.flatnonzero(term[:, i])
        assert ends.size, "the hopper never fell"
        t = int(ends[0])
        assert info["episode_length"][t, i] == t + 1
        # The final observation is the fallen hopper's; obs is a fresh standing start (z near
        # 1.25 in obs[0]) while the fallen one is unhealthy (z < 0.7 or |angle| > 0.2).
        z, angle = float(final[t, i, 0]), float(final[t, i, 1])
        assert z < 0.7 or abs(angle) > 0.2
        assert abs(float(obs[t, i, 0]) - float(obs0[i, 0])) < 0.05
        assert not np.allclose(obs[t, i], final[t, i])
        # Elsewhere the final observation is obs itself.
        np.testing.assert_array_equal(final[:t, i], obs[:t, i])


def test_missing_brax_is_one_value_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    with pytest.raises(ValueError, match=r"needs the brax extra: pip install -e '\.\[brax\]'"):
        envs.make("brax:swimmer")  # not made before: nothing cached


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--agent", "a2c", "--env", "brax:inverted_pendulum"], "needs a discrete action space"),
        (["--agent", "reinforce", "--env", "brax:inverted_pendulum"], "needs a discrete"),
        (["--agent", "td_actor_critic", "--env", "brax:inverted_pendulum"], "needs a discrete"),
        (["--agent", "ppo", "--env", "brax:hoper"], "unknown Brax env; valid: ant, fast"),
        (["--agent", "ppo", "--env", "brax:hopper:x"], "unknown Brax backend 'x'"),
    ],
)
def test_cli_refuses_in_one_line(refused, argv, needle):
    refused(train.main, argv, needle)


def test_cli_without_brax_names_the_extra(refused, monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    argv = ["--agent", "ppo", "--env", "brax:walker2d"]
    refused(train.main, argv, "brax env needs the brax extra: pip install -e '.[brax]'")


def test_vmapped_time_limit_truncates_keeps_the_final_obs_and_resets(pendulum):
    """N envs stepped at once, each with its own action and key. Before the limit obs is Brax's
    own next observation; at the limit: truncated, not terminated, ``final_observation`` is
    Brax's next observation and ``obs`` a reset drawn exactly as ``reset_env`` draws it."""
    env, params = pendulum
    params = params.replace(max_steps_in_episode=3)
    n = 3
    actions = jnp.array([[-0.05], [0.0], [0.05]])  # small: no env falls in 3 steps
    state, obs = envs.reset(jax.random.key(0), env, params, n)
    chex.assert_shape(obs, (n, 4))
    assert not np.allclose(obs[0], obs[1])  # each env its own reset noise

    @jax.jit
    def step(state, key):
        out = envs.step(key, env, params, state, actions)
        brax_next = jax.vmap(env.brax_env.step)(state.inner.brax_state, actions)
        # envs.step gives env i the key keys[i]; gymnax's step resets from split(keys[i])[1].
        reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(jax.random.split(key, n))
        reset_obs, _ = jax.vmap(env.reset_env, in_axes=(0, None))(reset_keys, params)
        return out, brax_next, reset_obs

    for t in range(1, 4):
        (obs, state, reward, term, trunc, info), brax_next, reset_obs = step(
            state, jax.random.key(t)
        )
        chex.assert_shape([obs, info["final_observation"]], (n, 4))
        chex.assert_shape([reward, term, trunc], (n,))
        np.testing.assert_allclose(info["final_observation"], brax_next.obs, rtol=1e-6)
        np.testing.assert_allclose(reward, brax_next.reward, rtol=1e-6)
        assert not np.asarray(term).any() and not np.asarray(brax_next.done).any()
        assert (np.asarray(trunc) == (t == 3)).all()
        if t < 3:
            np.testing.assert_array_equal(obs, info["final_observation"])
    # After the limit: new episodes from the env's reset distribution, the step count at 0.
    np.testing.assert_allclose(obs, reset_obs, rtol=1e-6)
    assert not np.allclose(obs, info["final_observation"])
    assert (np.asarray(state.inner.time) == 0).all()
    assert (np.asarray(info["episode_length"]) == 3).all()
    assert not np.allclose(info["final_observation"][0], info["final_observation"][2])


def _train(agent, config, env_name, num_seeds=2):
    env, params = envs.make(env_name)
    config.validate(envs.spec(env, params))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    return jax.jit(jax.vmap(loop.make_train(agent, config, env, params)))(keys)


def test_ppo_trains_a_few_updates(pendulum):
    config = ppo.PPOConfig(
        total_steps=3 * 4 * 16, num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2
    )
    carry, metrics = _train(ppo.AGENT, config, PENDULUM)
    chex.assert_tree_all_finite(ppo.AGENT.params(carry.agent))
    for k in ("actor_loss", "critic_loss", "entropy"):
        assert metrics[k].shape == (2, 3)
        chex.assert_tree_all_finite(metrics[k])
    assert int(carry.agent.env_steps[0]) == 3 * 64


def test_sac_trains_a_few_updates(pendulum):
    config = sac.SACConfig(
        total_steps=96, num_envs=2, batch_size=16, buffer_size=128, learning_starts=32
    )
    carry, metrics = _train(sac.AGENT, config, PENDULUM)
    chex.assert_tree_all_finite(sac.AGENT.params(carry.agent))
    for k in ("critic_loss", "actor_loss", "alpha"):
        chex.assert_tree_all_finite(metrics[k])
    assert np.isfinite(metrics["critic_loss"][:, -1]).all()


@pytest.mark.parametrize(
    "agent, config_cls", [(ddpg.AGENT, ddpg.DDPGConfig), (td3.AGENT, td3.TD3Config)]
)
def test_ddpg_and_td3_train_a_few_updates(pendulum, agent, config_cls):
    config = config_cls(
        total_steps=96, num_envs=2, batch_size=16, buffer_size=128, learning_starts=32
    )
    carry, metrics = _train(agent, config, PENDULUM)
    chex.assert_tree_all_finite(agent.params(carry.agent))
    assert np.isfinite(metrics["critic_loss"][:, -1]).all()
    assert int(carry.agent.env_steps[0]) == 96


def _eval(agent, config, carry, env_name, episodes=8):
    from rljax import evaluation

    env, params = envs.make(env_name)
    act = agent.make_act(config, envs.spec(env, params))
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    ev = jax.vmap(lambda k, p: evaluation.evaluate(k, greedy, p, env, params, episodes))
    keys = jax.random.split(jax.random.key(1), carry.agent.update.shape[0])
    return np.asarray(jax.jit(ev)(keys, agent.params(carry.agent)).mean(-1))


@pytest.mark.slow
def test_ppo_balances_the_inverted_pendulum():
    config = ppo.PPOConfig(total_steps=200_000, num_envs=16, num_steps=64, lr=1e-3)
    carry, _ = _train(ppo.AGENT, config, PENDULUM, num_seeds=4)
    returns = _eval(ppo.AGENT, config, carry, PENDULUM)
    assert stats.iqm(returns) >= 500, returns


@pytest.mark.slow
def test_sac_balances_the_inverted_pendulum():
    config = sac.SACConfig(total_steps=20_000)
    carry, _ = _train(sac.AGENT, config, PENDULUM, num_seeds=4)
    returns = _eval(sac.AGENT, config, carry, PENDULUM)
    assert stats.iqm(returns) >= 500, returns


@pytest.mark.slow
@pytest.mark.parametrize(
    "agent, config_cls", [(ddpg.AGENT, ddpg.DDPGConfig), (td3.AGENT, td3.TD3Config)]
)
def test_ddpg_and_td3_balance_the_inverted_pendulum(agent, config_cls):
    config = config_cls(total_steps=20_000)
    carry, _ = _train(agent, config, PENDULUM, num_seeds=4)
    returns = _eval(agent, config, carry, PENDULUM)
    assert stats.iqm(returns) >= 500, returns
