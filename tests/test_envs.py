"""Tests for rljax.envs and rljax.rollout: gymnax 1.0 terminal semantics and bookkeeping.

Termination is not truncation (docs/conventions.md): at a time limit ``truncated`` is set,
``terminated`` is not, the bootstrap ``discount = gamma * (1 - terminated)`` stays gamma, and
the bootstrap value is that of ``info["final_observation"]``, not of the next episode's first
observation.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, returns, rollout
from rljax.types import Transition

GAMMA = 0.99


def zero_policy(action_dim):
    def policy(key, obs):
        del key
        n = obs.shape[0]
        return jnp.zeros((n, action_dim), jnp.float32), jnp.zeros((n,), jnp.float32)

    return policy


def always_right(key, obs):
    del key
    n = obs.shape[0]
    return jnp.ones((n,), jnp.int32), jnp.zeros((n,), jnp.float32)


def balancing_controller(key, obs):
    """A linear state-feedback controller: keeps CartPole up (and centred) past 500 steps.

    With position feedback it never terminates, in float32 or float64 physics.
    """
    del key
    push = 0.1 * obs[:, 0] + 0.5 * obs[:, 1] + 10.0 * obs[:, 2] + 2.0 * obs[:, 3] > 0
    return push.astype(jnp.int32), jnp.zeros((obs.shape[0],), jnp.float32)


_MADE = {}


def make(env_name):
    """envs.make, once per name: the same env object lets jit reuse its compilations."""
    if env_name not in _MADE:
        _MADE[env_name] = envs.make(env_name)
    return _MADE[env_name]


_reset = jax.jit(envs.reset, static_argnames=("env", "num_envs"))
_rollout = jax.jit(rollout.rollout, static_argnames=("policy", "env"))


def run(env_name, policy, num_envs, num_steps, env_params=None, seed=0):
    env, default_params = make(env_name)
    env_params = default_params if env_params is None else env_params
    reset_key, roll_key = jax.random.split(jax.random.key(seed))
    state, obs = _reset(reset_key, env, env_params, num_envs)
    step_keys = jax.random.split(roll_key, num_steps)  # one key per step
    final_state, final_obs, traj = _rollout(step_keys, policy, env, env_params, state, obs)
    return env_params, final_state, final_obs, jax.tree.map(np.asarray, traj)


def time_major_returns(traj, v, gamma=GAMMA, lambda_=None):
    """discounted (or lambda-) returns for a [T, N] trajectory, one vmapped stream per env."""
    r_t = traj.reward.T
    discount_t = (gamma * (1.0 - traj.terminated)).astype(np.float32).T
    v_t = np.asarray(v(traj.next_obs)).T
    done_t = traj.done.T
    if lambda_ is None:
        out = jax.vmap(returns.discounted_returns)(r_t, discount_t, v_t, done_t)
    else:
        fn = jax.vmap(returns.lambda_returns, in_axes=(0, 0, 0, 0, None))
        out = fn(r_t, discount_t, v_t, done_t, lambda_)
    return np.asarray(out).T


def value_fn(obs):
    return obs.sum(-1)


# --------------------------------------------------------------------------------------------
# make / spec / step structure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(envs.ENVS))
def test_make_reset_step_every_env(name):
    env, env_params = envs.make(name)
    sp = envs.spec(env, env_params)
    assert sp.name == name == env.name
    assert sp.solved_threshold == envs.ENVS[name]
    n = 3
    state, obs = envs.reset(jax.random.key(0), env, env_params, n)
    chex.assert_shape(obs, (n, *sp.obs_shape))
    keys = jax.random.split(jax.random.key(1), n)
    action = jax.vmap(env.action_space(env_params).sample)(keys)
    chex.assert_shape(action, (n,) if sp.discrete else (n, sp.num_actions))
    out = envs.step(jax.random.key(2), env, env_params, state, action)
    assert isinstance(out, tuple) and len(out) == 6
    next_obs, new_state, reward, terminated, truncated, info = out
    chex.assert_shape(next_obs, (n, *sp.obs_shape))
    chex.assert_shape([reward, terminated, truncated], (n,))
    assert reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert set(info) >= {"final_observation", "episode_return", "episode_length"}
    chex.assert_shape(info["final_observation"], (n, *sp.obs_shape))
    chex.assert_shape([info["episode_return"], info["episode_length"]], (n,))
    assert isinstance(new_state, envs.VecEnvState)
    # One step into fresh episodes: running statistics are one step long.
    np.testing.assert_array_equal(new_state.episode_length, 1)
    np.testing.assert_allclose(new_state.episode_return, reward)


def test_make_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="CartPole-v2") as err:
        envs.make("CartPole-v2")
    for name in envs.ENVS:
        assert name in str(err.value)


def test_spec_facts():
    cartpole = envs.spec(*envs.make("CartPole-v1"))
    assert cartpole.discrete and cartpole.num_actions == 2
    assert cartpole.obs_shape == (4,)
    assert cartpole.max_steps == 500
    assert cartpole.solved_threshold == 475.0

    pendulum = envs.spec(*envs.make("Pendulum-v1"))
    assert not pendulum.discrete and pendulum.num_actions == 1
    assert pendulum.obs_shape == (3,)
    assert (pendulum.action_low, pendulum.action_high) == (-2.0, 2.0)
    assert pendulum.max_steps == 200
    assert pendulum.solved_threshold is None

    # max_steps follows the params it is given.
    env, env_params = envs.make("CartPole-v1")
    assert envs.spec(env, env_params.replace(max_steps_in_episode=10)).max_steps == 10


def test_step_is_jittable_and_keeps_structure():
    env, env_params = envs.make("CartPole-v1")
    state, obs = envs.reset(jax.random.key(0), env, env_params, 4)
    action = jnp.zeros((4,), jnp.int32)
    eager = envs.step(jax.random.key(1), env, env_params, state, action)
    jitted = jax.jit(envs.step, static_argnums=1)(jax.random.key(1), env, env_params, state, action)
    assert len(jitted) == 6
    assert jax.tree.structure(eager) == jax.tree.structure(jitted)
    chex.assert_trees_all_close(eager, jitted)
    with pytest.raises(AssertionError):  # one action per env
        envs.step(jax.random.key(1), env, env_params, state, jnp.zeros((3,), jnp.int32))


# --------------------------------------------------------------------------------------------
# Pendulum-v1: never terminates, truncates at 200 steps
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pendulum():
    return run("Pendulum-v1", zero_policy(1), num_envs=3, num_steps=205)


def test_pendulum_truncates_at_200(pendulum):
    _, final_state, final_obs, traj = pendulum
    T, N = 205, 3
    chex.assert_shape([traj.reward, traj.terminated, traj.truncated], (T, N))
    chex.assert_shape([traj.obs, traj.next_obs], (T, N, 3))
    chex.assert_shape(traj.action, (T, N, 1))
    assert not traj.terminated.any()
    assert traj.truncated[199].all()
    assert traj.done.sum() == N  # step 199 is the only episode end
    assert not traj.terminated[199].any()
    # Episode statistics: reported at the end only, over the 200 rewards of the episode.
    np.testing.assert_allclose(traj.episode_return[199], traj.reward[:200].sum(0), rtol=1e-5)
    np.testing.assert_array_equal(traj.episode_length[199], 200)
    not_end = np.ones(T, bool)
    not_end[199] = False
    np.testing.assert_array_equal(traj.episode_return[not_end], 0.0)
    np.testing.assert_array_equal(traj.episode_length[not_end], 0)
    # The running statistics restarted with the new episode: 5 steps into it.
    np.testing.assert_array_equal(final_state.episode_length, 5)
    np.testing.assert_allclose(final_state.episode_return, traj.reward[200:].sum(0), rtol=1e-5)
    np.testing.assert_array_equal(final_obs, traj.next_obs[-1])


def test_pendulum_final_observation_is_true_successor(pendulum):
    env_params, _, _, traj = pendulum
    # Within an episode, next_obs is the next step's obs; at the time limit it is not.
    keep = np.arange(204) != 199
    np.testing.assert_array_equal(traj.next_obs[:-1][keep], traj.obs[1:][keep])
    gap = np.abs(traj.next_obs[199] - traj.obs[200]).max(-1)
    assert (gap > 1e-3).all(), gap
    # next_obs[199] is the physical successor of obs[199] (zero torque), from the
    # Pendulum equations: thdot' = clip(thdot + 3g/(2l) sin(th) dt, +-8), th' = th + thdot' dt.
    o = traj.obs[199].astype(np.float64)
    th, thdot = np.arctan2(o[:, 1], o[:, 0]), o[:, 2]
    p = env_params
    new_thdot = np.clip(thdot + 3 * p.g / (2 * p.l) * np.sin(th) * p.dt, -p.max_speed, p.max_speed)
    new_th = th + new_thdot * p.dt
    expected = np.stack([np.cos(new_th), np.sin(new_th), new_thdot], -1)
    np.testing.assert_allclose(traj.next_obs[199], expected, rtol=1e-4, atol=1e-4)
    # ...and the reward of step 199 is that of obs[199]: -(th^2 + 0.1 thdot^2).
    np.testing.assert_allclose(traj.reward[199], -(th**2 + 0.1 * thdot**2), rtol=1e-4, atol=1e-4)


def test_pendulum_truncation_bootstraps_from_final_observation(pendulum):
    _, _, _, traj = pendulum
    discount = GAMMA * (1.0 - traj.terminated)
    np.testing.assert_allclose(discount[199], GAMMA)  # truncation keeps the bootstrap
    g = time_major_returns(traj, value_fn)
    r199 = traj.reward[199]
    right = r199 + GAMMA * value_fn(traj.next_obs[199])
    wrong = r199 + GAMMA * value_fn(traj.obs[200])  # the next episode's first observation
    np.testing.assert_allclose(g[199], right, rtol=1e-5, atol=1e-5)
    assert (np.abs(right - wrong) > 1e-3).all()
    # Before the boundary the recursion goes on; after it a new episode starts.
    np.testing.assert_allclose(g[198], traj.reward[198] + GAMMA * g[199], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        g[204], traj.reward[204] + GAMMA * value_fn(traj.next_obs[204]), rtol=1e-5, atol=1e-5
    )
    # Same for lambda-returns and GAE at the boundary.
    g_lam = time_major_returns(traj, value_fn, lambda_=0.9)
    np.testing.assert_allclose(g_lam[199], right, rtol=1e-5, atol=1e-5)
    adv = jax.vmap(returns.gae_advantages, in_axes=(0, 0, 0, 0, 0, None))(
        traj.reward.T,
        discount.astype(np.float32).T,
        value_fn(traj.obs).T,
        value_fn(traj.next_obs).T,
        traj.done.T,
        0.9,
    )
    np.testing.assert_allclose(
        np.asarray(adv).T[199], right - value_fn(traj.obs[199]), rtol=1e-5, atol=1e-5
    )


# --------------------------------------------------------------------------------------------
# CartPole-v1: terminates early when pushed one way; truncates at its time limit
# --------------------------------------------------------------------------------------------


def episode_lengths_np(done):
    """Length of the episode ending at each done step of a [T, N] array (0 elsewhere)."""
    T, N = done.shape
    out = np.zeros((T, N), np.int64)
    for n in range(N):
        length = 0
        for t in range(T):
            length += 1
            if done[t, n]:
                out[t, n] = length
                length = 0
    return out


def test_cartpole_always_right_terminates():
    _, _, _, traj = run("CartPole-v1", always_right, num_envs=2, num_steps=40)
    term = traj.terminated
    assert term.sum(0).min() >= 2  # several early terminations per env
    assert not traj.truncated.any()
    np.testing.assert_array_equal(traj.done, term)
    np.testing.assert_array_equal(traj.reward, 1.0)
    lengths = episode_lengths_np(traj.done)
    np.testing.assert_array_equal(traj.episode_length, lengths)
    assert (traj.episode_length[term] < 500).all()
    np.testing.assert_allclose(traj.episode_return, lengths.astype(np.float32))
    np.testing.assert_array_equal(traj.episode_return[~term], 0.0)
    # The final observation is the terminal one (pole or cart out of bounds); the next obs
    # is a fresh reset (all components within +-0.05).
    final = traj.next_obs[term]
    out_of_bounds = (np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * np.pi / 360)
    assert out_of_bounds.all()
    t_idx, n_idx = np.nonzero(term[:-1])
    assert (np.abs(traj.obs[t_idx + 1, n_idx]) <= 0.05).all()
    # Termination zeroes the bootstrap: the return at that step is just the reward.
    discount = GAMMA * (1.0 - term)
    np.testing.assert_array_equal(discount[term], 0.0)
    g = time_major_returns(traj, value_fn)
    np.testing.assert_allclose(g[term], traj.reward[term], rtol=0, atol=0)
    # The step before a termination sees one more discounted reward (no leak from after).
    t_idx, n_idx = np.nonzero(term[1:])
    prev = ~traj.done[t_idx, n_idx]
    np.testing.assert_allclose(g[t_idx, n_idx][prev], 1.0 + GAMMA, rtol=1e-6)
    # rollout.completed_episodes: sum and count of the returns of completed episodes.
    total, count = rollout.completed_episodes(jax.tree.map(jnp.asarray, traj))
    assert int(count) == term.sum()
    np.testing.assert_allclose(total, lengths[term].sum(), rtol=1e-6)


def test_cartpole_truncates_at_500_with_balancing_controller():
    _, _, _, traj = run("CartPole-v1", balancing_controller, num_envs=2, num_steps=505)
    assert not traj.terminated.any()
    assert traj.truncated[499].all()
    assert traj.done.sum() == 2
    np.testing.assert_array_equal(traj.episode_length[499], 500)
    np.testing.assert_allclose(traj.episode_return[499], 500.0)
    g = time_major_returns(traj, value_fn)
    np.testing.assert_allclose(
        g[499], 1.0 + GAMMA * value_fn(traj.next_obs[499]), rtol=1e-5, atol=1e-5
    )
    assert (np.abs(traj.next_obs[499] - traj.obs[500]).max(-1) > 1e-3).all()


def test_cartpole_short_time_limit():
    env, env_params = make("CartPole-v1")
    short = env_params.replace(max_steps_in_episode=10)
    _, _, _, traj = run("CartPole-v1", balancing_controller, 3, 30, env_params=short)
    assert not traj.terminated.any()
    expected = np.zeros((30, 3), bool)
    expected[[9, 19, 29]] = True
    np.testing.assert_array_equal(traj.truncated, expected)
    np.testing.assert_array_equal(traj.episode_length[expected], 10)
    np.testing.assert_allclose(traj.episode_return[expected], 10.0)
    discount = GAMMA * (1.0 - traj.terminated)
    np.testing.assert_allclose(discount[9], GAMMA)
    g = time_major_returns(traj, value_fn)
    np.testing.assert_allclose(g[9], 1.0 + GAMMA * value_fn(traj.next_obs[9]), rtol=1e-5)
    # The first episode: steps 0..9.
    mask = np.asarray(rollout.first_episode_mask(jnp.asarray(traj.done)))
    np.testing.assert_array_equal(mask, np.arange(30)[:, None] < 10 + np.zeros((1, 3)))


def test_cartpole_terminated_and_truncated_at_once():
    # Find when always-right terminates from a fixed start, then put the time limit there.
    _, _, _, traj = run("CartPole-v1", always_right, num_envs=1, num_steps=30, seed=3)
    length = int(np.nonzero(traj.terminated[:, 0])[0][0]) + 1
    env, env_params = make("CartPole-v1")
    limit = env_params.replace(max_steps_in_episode=length)
    _, _, _, traj = run("CartPole-v1", always_right, 1, 30, env_params=limit, seed=3)
    t = length - 1
    assert traj.terminated[t, 0] and traj.truncated[t, 0] and traj.done[t, 0]
    assert traj.done[:t].sum() == 0
    assert traj.episode_length[t, 0] == length
    # Termination wins: no bootstrap.
    g = time_major_returns(traj, value_fn)
    np.testing.assert_allclose(g[t], traj.reward[t], rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# rollout helpers against numpy
# --------------------------------------------------------------------------------------------


def np_first_episode_mask(done):
    done = np.asarray(done, bool)
    mask = np.zeros(done.shape, bool)
    cols = done.reshape(done.shape[0], -1)
    out = mask.reshape(done.shape[0], -1)
    for n in range(cols.shape[1]):
        for t in range(cols.shape[0]):
            out[t, n] = True
            if cols[t, n]:
                break
    return out.reshape(done.shape)


def test_first_episode_mask_vs_numpy():
    rng = np.random.default_rng(0)
    for shape in [(20, 4), (15,), (1, 3)]:
        done = rng.random(shape) < 0.2
        out = rollout.first_episode_mask(jnp.asarray(done))
        np.testing.assert_array_equal(out, np_first_episode_mask(done))
        np.testing.assert_array_equal(jax.jit(rollout.first_episode_mask)(done), out)
    # Hand case: done at t = 1 in env 0, never in env 1.
    done = np.array([[False, False], [True, False], [False, False], [True, False]])
    expected = np.array([[True, True], [True, True], [False, True], [False, True]])
    np.testing.assert_array_equal(rollout.first_episode_mask(jnp.asarray(done)), expected)
    # Works with 0/1 floats.
    np.testing.assert_array_equal(
        rollout.first_episode_mask(jnp.asarray(done, jnp.float32)), expected
    )


def test_completed_episodes_vs_numpy():
    rng = np.random.default_rng(1)
    T, N = 25, 6
    terminated = rng.random((T, N)) < 0.1
    truncated = rng.random((T, N)) < 0.1
    done = terminated | truncated
    # Non-zero junk where no episode ended: it must not be counted.
    ep_return = rng.normal(size=(T, N)).astype(np.float32) * 100
    z = np.zeros((T, N), np.float32)
    traj = Transition(
        obs=z,
        action=z,
        log_prob=z,
        reward=z,
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=z,
        episode_return=jnp.asarray(ep_return),
        episode_length=jnp.zeros((T, N), jnp.int32),
    )
    total, count = rollout.completed_episodes(traj)
    assert count.dtype == jnp.int32
    assert int(count) == done.sum()
    np.testing.assert_allclose(total, ep_return[done].astype(np.float64).sum(), rtol=1e-5)
    total_j, count_j = jax.jit(rollout.completed_episodes)(traj)
    np.testing.assert_allclose(total_j, total, rtol=1e-6)
    assert int(count_j) == int(count)


def random_policy(key, obs):
    n = obs.shape[0]
    return jax.random.randint(key, (n,), 0, 2), jnp.zeros((n,), jnp.float32)


def test_rollout_episodes_matches_rollout_until_every_env_has_ended():
    """The same steps as rollout's up to the last env's first episode end, zeros after it,
    under vmap over seeds too (each seed stops at its own last env)."""
    env, params = make("CartPole-v1")
    T, n = 120, 4

    def both(key):
        reset_key, roll_key = jax.random.split(key)
        state, obs = envs.reset(reset_key, env, params, n)
        keys = jax.random.split(roll_key, T)
        full = rollout.rollout(keys, random_policy, env, params, state, obs)[2]
        return full, rollout.rollout_episodes(keys, random_policy, env, params, state, obs)

    full, short = jax.jit(jax.vmap(both))(jax.random.split(jax.random.key(5), 3))
    full, short = jax.tree.map(np.asarray, (full, short))
    ends = []
    for s in range(3):
        done = full.done[s]  # [T, N]
        assert done.any(0).all()  # every env ends an episode within T (random CartPole)
        last = int(max(np.argmax(done[:, i]) for i in range(n)))
        ends.append(last)
        for f, g in zip(jax.tree.leaves(full), jax.tree.leaves(short), strict=True):
            np.testing.assert_array_equal(g[s, : last + 1], f[s, : last + 1])
            np.testing.assert_array_equal(g[s, last + 1 :], 0)
    assert len(set(ends)) > 1  # the seeds stopped at different steps


# --------------------------------------------------------------------------------------------
# Solved-criterion window
# --------------------------------------------------------------------------------------------


# Jitted once (one compilation per shape and threshold); test_episode_window_solved_mid_batch
# calls the function without jit.
_window_update = jax.jit(envs.episode_window_update, static_argnames="threshold")


class NpWindow:
    """Append completed episodes one at a time in time order; record the first solve."""

    def __init__(self, size):
        self.size = size
        self.returns = [0.0] * size
        self.count = 0
        self.solved_at = -1
        self.running = 0.0  # the Keras running reward, one episode at a time (float64)

    def update(self, episode_return, done, threshold):
        for r, d in zip(np.ravel(episode_return), np.ravel(done), strict=True):
            if not d:
                continue
            self.returns.append(float(r))
            self.count += 1
            self.running = 0.05 * float(r) + 0.95 * self.running
            last = self.returns[-self.size :]
            if (
                self.solved_at < 0
                and threshold is not None
                and self.count >= self.size
                and sum(last) / self.size >= threshold
            ):
                self.solved_at = self.count

    def check(self, window):
        np.testing.assert_allclose(window.returns, self.returns[-self.size :], rtol=0, atol=0)
        assert int(window.count) == self.count
        assert int(window.solved_at) == self.solved_at
        np.testing.assert_allclose(float(window.running), self.running, rtol=1e-5, atol=1e-5)


def test_episode_window_init():
    w = envs.episode_window_init(5)
    chex.assert_shape(w.returns, (5,))
    assert int(w.count) == 0 and int(w.solved_at) == -1
    assert envs.episode_window_init().returns.shape == (100,)


def test_episode_window_solved_mid_batch():
    size, threshold = 5, 10.0
    w, ref = envs.episode_window_init(size), NpWindow(size)
    # Batch 1: three episodes of 4 (not enough episodes yet).
    ret = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]], np.float32)
    done = ret > 0
    w = envs.episode_window_update(w, ret, done, threshold)
    ref.update(ret, done, threshold)
    ref.check(w)
    assert int(w.solved_at) == -1
    # Batch 2, [T=3, N=3]; C order (time first) appends 20, 30, 20, 1, 1. After the 4th
    # episode the window holds 4+4+4+20 (only 4 episodes); after the 5th, 4+4+4+20+30 = 62
    # >= 5 * 10: solved at episode 5, the second of the five new ones.
    ret = np.array([[20.0, 0.0, 0.0], [0.0, 30.0, 20.0], [1.0, 0.0, 1.0]], np.float32)
    done = np.array([[True, False, False], [False, True, True], [True, False, True]])
    w = envs.episode_window_update(w, ret, done, threshold)
    ref.update(ret, done, threshold)
    ref.check(w)
    assert ref.solved_at == 5 and int(w.solved_at) == 5
    assert int(w.count) == 8


def test_episode_window_exact_threshold_counts():
    w = envs.episode_window_init(3)
    ret = np.array([1.0, 2.0, 3.0], np.float32)
    w = _window_update(w, ret, np.ones(3, bool), 2.0)  # mean exactly 2
    assert int(w.solved_at) == 3


def test_episode_window_unsolved_and_none():
    size = 5
    rng = np.random.default_rng(0)
    w, ref = envs.episode_window_init(size), NpWindow(size)
    w_none, ref_none = envs.episode_window_init(size), NpWindow(size)
    for _ in range(4):
        ret = rng.integers(0, 10, size=(6, 4)).astype(np.float32)
        done = rng.random((6, 4)) < 0.5
        w = _window_update(w, ret, done, 10.0)  # returns < 10: never solved
        ref.update(ret, done, 10.0)
        ref.check(w)
        big = ret + 1e6
        w_none = _window_update(w_none, big, done, None)  # no threshold
        ref_none.update(big, done, None)
        ref_none.check(w_none)
    assert int(w.solved_at) == -1 and int(w_none.solved_at) == -1
    assert int(w.count) > size  # enough episodes that it could have been solved


def test_episode_window_solved_at_never_changes():
    size, threshold = 5, 10.0
    w, ref = envs.episode_window_init(size), NpWindow(size)
    batches = [
        np.full((2, 3), 50.0, np.float32),  # solved at the 5th episode
        np.zeros((2, 3), np.float32),  # window falls below the threshold
        np.full((4, 3), 50.0, np.float32),  # back above: must not move solved_at
    ]
    for ret in batches:
        done = np.ones(ret.shape, bool)
        w = _window_update(w, ret, done, threshold)
        ref.update(ret, done, threshold)
        ref.check(w)
        assert int(w.solved_at) == 5


def test_running_reward_vs_numpy():
    """Folded one completed episode at a time, in C order (time first); any alpha; jitted."""
    rng = np.random.default_rng(3)
    fn = jax.jit(envs.running_reward)
    for shape, alpha in (((1,), 0.05), ((7, 3), 0.05), ((50, 4), 0.3), ((6, 2), 1.0)):
        ret = rng.normal(0.0, 100.0, size=shape).astype(np.float32)
        done = rng.random(shape) < 0.4
        start = float(rng.normal(0.0, 50.0))
        r = start
        for g, d in zip(ret.ravel(), done.ravel(), strict=True):
            r = alpha * float(g) + (1.0 - alpha) * r if d else r
        out = fn(jnp.float32(start), ret, done, alpha)
        assert out.shape == () and out.dtype == jnp.float32
        np.testing.assert_allclose(float(out), r, rtol=1e-5, atol=1e-3)
    never = envs.running_reward(jnp.float32(7.0), ret, np.zeros(shape, bool))
    assert float(never) == 7.0  # no episode: unchanged, exactly
    # Order matters: the later episode weighs more.
    done2 = np.array([[True], [True]])
    a = envs.running_reward(jnp.float32(0.0), np.array([[100.0], [0.0]], np.float32), done2, 0.5)
    b = envs.running_reward(jnp.float32(0.0), np.array([[0.0], [100.0]], np.float32), done2, 0.5)
    assert float(a) == 25.0 and float(b) == 50.0


def test_running_reward_shape_mismatch_names_arguments():
    with pytest.raises(ValueError, match="running_reward: .*done"):
        envs.running_reward(jnp.float32(0.0), np.zeros((3, 2)), np.zeros((3,), bool))
    with pytest.raises(ValueError, match="running_reward: running"):
        envs.running_reward(jnp.zeros(2), np.zeros((3, 2)), np.zeros((3, 2), bool))


def test_episode_window_random_vs_numpy_jit():
    size = 5
    shapes = [(1, 1), (3, 2), (4, 4)]  # few shapes: one compilation each
    solved = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        threshold = (4.0, 6.0)[seed % 2]  # few thresholds: it is a static argument
        w, ref = envs.episode_window_init(size), NpWindow(size)
        for _ in range(6):
            # Batches with no, few, or more episodes than the window holds.
            shape = shapes[int(rng.integers(len(shapes)))]
            ret = rng.integers(0, 10, size=shape).astype(np.float32)
            done = rng.random(shape) < rng.choice([0.0, 0.3, 1.0])
            w = _window_update(w, ret, done, threshold)
            ref.update(ret, done, threshold)
            ref.check(w)
        solved.append(ref.solved_at > 0)
    assert any(solved) and not all(solved)  # both outcomes were exercised


def test_episode_window_large_batches_vmapped_vs_numpy():
    """The runner's use: the default 100-episode window, batches of hundreds of steps (PPO's
    5 envs x 100 steps), vmapped over seeds; integer returns, so every window sum is exact."""
    seeds, shape, threshold = 3, (100, 5), 475.0
    vmapped = jax.vmap(envs.episode_window_update, in_axes=(0, 0, 0, None))
    update = jax.jit(vmapped, static_argnums=3)
    w = jax.vmap(lambda _: envs.episode_window_init())(jnp.arange(seeds))
    refs = [NpWindow(100) for _ in range(seeds)]
    rng = np.random.default_rng(7)
    for _ in range(4):
        ret = rng.integers(451, 501, size=(seeds, *shape)).astype(np.float32)
        done = rng.random((seeds, *shape)) < 0.15
        w = update(w, ret, done, threshold)
        for s, ref in enumerate(refs):
            ref.update(ret[s], done[s], threshold)
            ref.check(jax.tree.map(lambda x: x[s], w))  # noqa: B023
    solved = [ref.solved_at for ref in refs]
    assert any(s > 0 for s in solved) and len(set(solved)) > 1  # solved, at different episodes
