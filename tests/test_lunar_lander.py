"""rljax.lunar_lander: the JAX LunarLander-v3 against Gymnasium's Box2D original."""

from __future__ import annotations

import copy

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs
from rljax import lunar_lander as ll

gym = pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")
from gymnasium.envs.box2d.lunar_lander import heuristic  # noqa: E402


class Fns:
    """One set of jitted functions, compiled once for the whole module."""

    def __init__(self):
        self.env = ll.LunarLander()
        self.params = self.env.default_params
        self.step = jax.jit(self.env.step)
        self.reset_from = jax.jit(self.env.reset_from)
        self.advance = jax.jit(self.env.advance)
        self.heuristic = jax.jit(ll.heuristic_action, static_argnums=1)

    def reset(self, seed):
        """A random reset through ``reset_from`` (one compiled reset for the module)."""
        rng = np.random.default_rng(seed)
        height = rng.uniform(0, ll.H / 2, ll.CHUNKS + 1)
        force = rng.uniform(-ll.INITIAL_RANDOM, ll.INITIAL_RANDOM, 2)
        return self.reset_from(jax.random.key(seed), height, force, self.params)


@pytest.fixture(scope="module")
def fns():
    return Fns()


def _gym_draws(seed):
    """The terrain heights and initial force Gymnasium's reset(seed) draws, and the generator
    state after them (the next draws are the first step's dispersion)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    height = rng.uniform(0, ll.H / 2, size=(ll.CHUNKS + 1,))
    force = rng.uniform(-ll.INITIAL_RANDOM, ll.INITIAL_RANDOM, 2)
    return height, force


def _matched(fns, seed):
    """Gymnasium's env reset with ``seed`` and the rljax state built from the same draws."""
    g = gym.make("LunarLander-v3")
    obs_g, _ = g.reset(seed=seed)
    height, force = _gym_draws(seed)
    obs_j, state = fns.reset_from(jax.random.key(0), height, force, fns.params)
    return g, obs_g, obs_j, state


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reset_observation_matches_gymnasium(fns, seed):
    g, obs_g, obs_j, state = _matched(fns, seed)
    chex.assert_shape(obs_j, (8,))
    assert obs_j.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(obs_j), obs_g, atol=1e-3)
    # Same terrain (Gymnasium keeps it as the sky polygons' lower edges).
    terrain = np.array([p[0] for p in g.unwrapped.sky_polys] + [g.unwrapped.sky_polys[-1][1]])
    np.testing.assert_allclose(np.asarray(state.terrain), terrain, atol=1e-5)
    # Same body poses: the lander's origin and both legs (joints snapped into place).
    lander = g.unwrapped.lander
    origin = np.asarray(ll.LunarLander._origin(state))
    np.testing.assert_allclose(origin, tuple(lander.position), atol=2e-3)
    for i, leg in enumerate(g.unwrapped.legs):
        np.testing.assert_allclose(np.asarray(state.pos[1 + i]), tuple(leg.position), atol=2e-3)
        np.testing.assert_allclose(float(state.angle[1 + i]), leg.angle, atol=2e-3)


@pytest.mark.parametrize("action", [0, 1, 2, 3])
def test_engine_step_matches_gymnasium(fns, action):
    """One step after a matched reset, with Gymnasium's own dispersion draws."""
    g, _, _, state = _matched(fns, 4)
    rng = copy.deepcopy(g.unwrapped.np_random)
    dispersion = np.array([rng.uniform(-1.0, 1.0) for _ in range(2)]) / ll.SCALE
    obs_g, r_g, term_g, _, _ = g.step(action)
    obs_j, _, r_j, term_j = fns.advance(
        jnp.asarray(dispersion, jnp.float32), state, action, jnp.zeros((3, 2)), fns.params
    )
    np.testing.assert_allclose(np.asarray(obs_j), obs_g, atol=2e-3)
    np.testing.assert_allclose(float(r_j), r_g, atol=0.05)
    assert bool(term_j) == term_g is False


def test_registry_and_spec():
    env, params = envs.make("LunarLander-v3")
    assert isinstance(env, ll.LunarLander) and not env.continuous
    sp = envs.spec(env, params)
    assert (sp.name, sp.obs_shape, sp.discrete, sp.num_actions) == ("LunarLander-v3", (8,), True, 4)
    assert sp.max_steps == 1000 and sp.solved_threshold == 200.0
    env, params = envs.make("LunarLanderContinuous-v3")
    sp = envs.spec(env, params)
    assert (sp.discrete, sp.num_actions, sp.action_low, sp.action_high) == (False, 2, -1.0, 1.0)
    assert sp.name == "LunarLanderContinuous-v3" and sp.max_steps == 1000


def _place(state, dy=0.0, dx=0.0):
    return state.replace(pos=state.pos + jnp.array([dx, dy]), vel=jnp.zeros((3, 2)))


def test_crash_when_the_body_touches_the_ground(fns):
    _, state = fns.reset(0)
    # Lower the whole lander until the body's bottom (10 px below the origin) meets the pad
    # (the terrain under the pad is at 0.99 HELIPAD_Y: Gymnasium smooths with 0.33, not 1/3).
    bottom = float(ll.LunarLander._origin(state)[1]) - 10 / ll.SCALE
    pad = float(state.terrain[ll.CHUNKS // 2, 1])
    assert abs(pad - 0.99 * ll.HELIPAD_Y) < 1e-5
    state = _place(state, dy=pad - bottom - 0.005)
    _, new, reward, terminated, truncated, info = fns.step(jax.random.key(1), state, 0, fns.params)
    assert bool(terminated) and not bool(truncated)
    assert float(reward) == -100.0
    assert int(new.time) == 0  # auto-reset


def test_leaving_the_screen_terminates(fns):
    _, state = fns.reset(0)
    state = _place(state, dx=ll.W / 2 + 0.5)  # |obs x| > 1, high in the sky
    _, _, reward, terminated, _, info = fns.step(jax.random.key(1), state, 0, fns.params)
    assert bool(terminated) and float(reward) == -100.0
    assert abs(float(info["final_observation"][0])) >= 1.0


def test_truncation_at_1000_steps_keeps_final_observation(fns):
    _, state = fns.reset(0)
    state = state.replace(time=999)
    obs, new, _, terminated, truncated, info = fns.step(jax.random.key(1), state, 0, fns.params)
    assert bool(truncated) and not bool(terminated)
    assert int(new.time) == 0
    final = np.asarray(info["final_observation"])
    assert not np.allclose(final, np.asarray(obs))  # obs is the next episode's first
    # The final observation is the falling lander one step on, high above the pad.
    assert final[1] > 1.0
    # One step earlier: neither.
    _, new, _, terminated, truncated, _ = fns.step(
        jax.random.key(1), state.replace(time=998), 0, fns.params
    )
    assert not bool(truncated) and not bool(terminated) and int(new.time) == 999


S, N, T = 2, 2, 400  # seeds x envs x steps of the module's one batched rollout


@pytest.fixture(scope="module")
def batched(fns):
    """``rollout(keys [S, N], states [S, N])``: T heuristic steps of every env under
    ``jit(vmap(vmap(scan)))``, as the runner nests them; compiled once for the module."""
    env, params = fns.env, fns.params

    def one(key, state, obs):
        def body(carry, key):
            state, obs = carry
            action = ll.heuristic_action(obs, False)
            obs, state, reward, term, trunc, info = env.step(key, state, action, params)
            return (state, obs), (obs, reward, term, trunc, info["final_observation"])

        return jax.lax.scan(body, (state, obs), jax.random.split(key, T))[1]

    rollout = jax.jit(jax.vmap(jax.vmap(one)))
    resets = [fns.reset(10 + i) for i in range(S * N)]
    obs = jnp.stack([o for o, _ in resets]).reshape(S, N, 8)
    states = jax.tree.map(
        lambda *x: jnp.stack(x).reshape(S, N, *x[0].shape), *[r[1] for r in resets]
    )
    return rollout, states, obs


def test_vmap_over_envs_and_seeds_and_determinism(fns, batched):
    rollout, states, obs0 = batched
    keys = jax.random.split(jax.random.key(7), S * N).reshape(S, N)
    out = rollout(keys, states, obs0)
    obs, reward, term, trunc, final = out
    chex.assert_shape([obs, final], (S, N, T, 8))
    chex.assert_shape([reward, term, trunc], (S, N, T))
    assert len({tuple(np.round(np.asarray(o), 6)) for o in obs[:, :, 0].reshape(-1, 8)}) == S * N
    # Deterministic under the same keys, different under others.
    again = rollout(keys, states, obs0)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = rollout(jax.random.split(jax.random.key(8), S * N).reshape(S, N), states, obs0)
    assert not np.allclose(np.asarray(other[0]), np.asarray(obs))
    # Batched equals unbatched (the first step of env [1, 0]).
    state = jax.tree.map(lambda x: x[1, 0], states)
    k = jax.random.split(keys[1, 0], T)[0]
    action = ll.heuristic_action(obs0[1, 0], False)
    o, _, r, *_ = fns.step(k, state, action, fns.params)
    np.testing.assert_allclose(np.asarray(obs[1, 0, 0]), np.asarray(o), atol=1e-4)
    np.testing.assert_allclose(float(reward[1, 0, 0]), float(r), atol=1e-3)


def test_heuristic_lands_and_rest_gives_100(batched):
    rollout, states, obs0 = batched
    keys = jax.random.split(jax.random.key(7), S * N).reshape(S, N)
    _, reward, term, trunc, final = (np.asarray(x) for x in rollout(keys, states, obs0))
    landed = 0
    for s in range(S):
        for n in range(N):
            ends = np.flatnonzero(term[s, n] | trunc[s, n])
            assert len(ends) > 0, "the heuristic ends its first episode within T steps"
            t = ends[0]
            assert term[s, n, t] and not trunc[s, n, t] and t > 100
            assert reward[s, n, t] in (100.0, -100.0)
            if reward[s, n, t] == 100.0:  # at rest (asleep) on both legs, near the pad
                landed += 1
                assert final[s, n, t, 6] == 1.0 and final[s, n, t, 7] == 1.0
                assert abs(final[s, n, t, 0]) < 0.5
    assert landed >= S * N - 1


def test_heuristic_action_matches_gymnasium(fns):
    g_d = gym.make("LunarLander-v3")
    g_c = gym.make("LunarLander-v3", continuous=True)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.normal(0, 0.5, 8).astype(np.float32)
        s[6:] = rng.integers(0, 2, 2)
        assert int(fns.heuristic(s, False)) == heuristic(g_d, s)
        np.testing.assert_allclose(
            np.asarray(fns.heuristic(s, True)), heuristic(g_c, s), rtol=1e-5, atol=1e-5
        )


def test_continuous_engines(fns):
    """Continuous actions: full throttle / full side thrust act like the discrete engines,
    below the thresholds nothing fires, and a half-open throttle is half power."""
    env = ll.LunarLander(continuous=True)
    params = env.default_params
    _, state = fns.reset(0)  # the state is the same for both action spaces
    disp = jnp.array([0.01, -0.02], jnp.float32)

    def engines(e, action):
        return [np.asarray(x) for x in e._engines(state, action, disp, params)]

    for cont, disc in [([1.0, 0.0], 2), ([-1.0, 1.0], 3), ([-1.0, -1.0], 1), ([0.0, 0.5], 0)]:
        got = engines(env, jnp.array(cont, jnp.float32))
        want = engines(fns.env, disc)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    m_power, s_power, side = engines(env, jnp.array([0.0001, -0.75], jnp.float32))[2:]
    assert abs(m_power - 0.50005) < 1e-6 and abs(s_power - 0.75) < 1e-6
    assert abs(side + 0.75) < 1e-6  # the left engine fired (drawn as its flame)
    # Shapes and dtypes of a whole step, traced but not compiled.
    obs, _ = jax.eval_shape(env.reset, jax.random.key(0), params)
    out = jax.eval_shape(env.step, jax.random.key(1), state, jnp.zeros(2, jnp.float32), params)
    obs2, _, reward, terminated, truncated, info = out
    assert obs.shape == obs2.shape == info["final_observation"].shape == (8,)
    assert reward.dtype == jnp.float32 and terminated.dtype == truncated.dtype == jnp.bool_
    assert env.action_space(params).shape == (2,) and env.name == "LunarLanderContinuous-v3"


@pytest.mark.slow
def test_statistical_parity_with_gymnasium():
    """Random and heuristic policies: mean return, length and landing rate within 15% (the
    benchmark runs 500+ episodes; here 100)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lunar_parity.py"
    spec = importlib.util.spec_from_file_location("lunar_parity", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    jax_stats, gymnasium_stats = bench.jax_stats, bench.gymnasium_stats
    for policy in ("random", "heuristic"):
        j = jax_stats(policy, 100, seed=0)
        g = gymnasium_stats(policy, 100, seed=0)
        for field in ("mean_return", "mean_length"):
            assert abs(j[field] - g[field]) <= 0.15 * abs(g[field]), (policy, field, j, g)
        if policy == "heuristic":
            assert abs(j["landing_rate"] - g["landing_rate"]) <= 0.15, (j, g)
