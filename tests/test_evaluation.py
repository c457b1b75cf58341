"""rljax.evaluation.evaluate: each return is that of the episode's first end, and act is
played as given (a greedy act gives the greedy return), against a Python replay on CartPole."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, evaluation
from rljax.agents import a2c

N = 6  # episodes per evaluation


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


def balance(obs):
    """Push towards the side the pole falls to: keeps CartPole up for a long time."""
    return (obs[..., 2] + 0.5 * obs[..., 3] > 0).astype(jnp.int32)


def replay(key, env, env_params, policy):
    """Each episode's return, played one env at a time in Python until its first end.

    ``policy(obs[N]) -> action[N]`` (each env uses its own row). The envs start where
    ``evaluate`` starts them: reset with the first half of its key's split.
    """
    reset_key = jax.random.split(key)[0]
    state, obs = envs.reset(reset_key, env, env_params, N)
    step = jax.jit(lambda s, a: env.step_env(jax.random.key(0), s, a, env_params))  # no reset
    max_steps = int(env_params.max_steps_in_episode)
    returns = []
    for i in range(N):
        s = jax.tree.map(lambda x: x[i], state.inner)  # noqa: B023
        o, total = obs[i], 0.0
        for t in range(max_steps):
            a = policy(jnp.broadcast_to(o, obs.shape))[i]
            o, s, reward, terminated, _ = step(s, a)
            total += float(reward)
            if bool(terminated) or t + 1 == max_steps:  # the first end: termination or limit
                break
        returns.append(total)
    return np.asarray(returns)


def test_returns_stop_at_each_episodes_first_end(cartpole):
    """Steps after an episode's first end are masked out. Envs pushed left terminate early and
    score their own episode's length (CartPole pays 1 a step, so without the mask every env
    would score the full 500); envs that balance are cut by the time limit, whose step
    counts. Half the envs do each."""
    env, env_params = cartpole
    left = np.arange(N) % 2 == 0

    def policy(obs):
        return jnp.where(jnp.asarray(left), 0, balance(obs))

    key = jax.random.key(7)
    got = np.asarray(evaluation.evaluate(key, lambda k, p, o: policy(o), None, env, env_params, N))
    want = replay(key, env, env_params, policy)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[left] < 50) and len(set(got[left])) > 1  # terminated, each its own length
    assert np.all(got[~left] == 500.0)  # truncated at the limit, the last step included


def test_a_short_time_limit_cuts_every_episode(cartpole):
    """With a time limit of 20 steps evaluate plays 20 steps: balancing envs score 20."""
    env, env_params = cartpole
    env_params = env_params.replace(max_steps_in_episode=20)
    key = jax.random.key(3)
    got = evaluation.evaluate(key, lambda k, p, o: balance(o), None, env, env_params, N)
    np.testing.assert_array_equal(got, np.full(N, 20.0))
    np.testing.assert_array_equal(got, replay(key, env, env_params, balance))


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_act_of_fixed_logits_is_played_as_given(cartpole, seed):
    """An act returning argmax of fixed logits (always left) scores the always-left replay;
    sampling from the same logits (greedy=False) scores something else on the same key."""
    env, env_params = cartpole
    logits = jnp.array([0.2, 0.0])

    def act(key, params, obs, greedy):
        rows = jnp.broadcast_to(params, (obs.shape[0], 2))
        return jnp.argmax(rows, -1) if greedy else jax.random.categorical(key, rows)

    key = jax.random.key(seed)
    run = lambda greedy: np.asarray(  # noqa: E731
        evaluation.evaluate(key, lambda k, p, o: act(k, p, o, greedy), logits, env, env_params, N)
    )
    greedy = run(True)
    left = lambda obs: jnp.zeros(obs.shape[0], jnp.int32)  # noqa: E731
    np.testing.assert_array_equal(greedy, replay(key, env, env_params, left))
    np.testing.assert_array_equal(run(True), greedy)  # deterministic
    assert not np.array_equal(run(False), greedy)


def test_agent_greedy_act_matches_replay_of_its_argmax(cartpole):
    """An agent's ``act(..., greedy=True)`` (a2c's, on fresh parameters) is played as given:
    the returns are those of the argmax of its network's logits, not of samples."""
    env, env_params = cartpole
    spec = envs.spec(env, env_params)
    config = a2c.A2CConfig(hidden_size=8)
    params = a2c.AGENT.params(a2c.init(jax.random.key(1), config, spec))
    act = a2c.make_act(config, spec)
    key = jax.random.key(5)
    greedy = lambda k, p, o: act(k, p, o, True)  # noqa: E731
    got = np.asarray(evaluation.evaluate(key, greedy, params, env, env_params, N))
    want = replay(key, env, env_params, lambda o: act(None, params, o, True))
    np.testing.assert_array_equal(got, want)
    sampled = lambda k, p, o: act(k, p, o, False)  # noqa: E731
    assert not np.array_equal(evaluation.evaluate(key, sampled, params, env, env_params, N), got)
