"""Tests for rljax.returns: numpy loops, hand-checked cases, identities, gradients.

Convention (docs/conventions.md): ``discount_t = gamma * (1 - terminated_t)``; ``done_t`` =
terminated or truncated cuts the recursion; ``v_t`` is the value of the state after step t
(of the final observation at an episode end), so a truncated step bootstraps from ``v_t``.
"""

import functools

import bitwise
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from rljax import returns

RTOL = 1e-5
ATOL = 1e-5
LAMBDAS = (0.0, 0.3, 0.95, 1.0)


# --------------------------------------------------------------------------------------------
# numpy float64 references, written from the equations.
# --------------------------------------------------------------------------------------------


def np_discounted_returns(r_t, discount_t, v_t, done_t):
    """G_t = r_t + discount_t * (G_{t+1} if not done_t else v_t); the last step uses v_t."""
    r_t, discount_t, v_t = (np.asarray(x, np.float64) for x in (r_t, discount_t, v_t))
    done_t = np.asarray(done_t).astype(bool)
    T = len(r_t)
    g = np.zeros(T)
    for t in reversed(range(T)):
        bootstrap = v_t[t] if (done_t[t] or t == T - 1) else g[t + 1]
        g[t] = r_t[t] + discount_t[t] * bootstrap
    return g


def np_lambda_returns(r_t, discount_t, v_t, done_t, lambda_):
    """G_t = r_t + discount_t*((1-l_t) v_t + l_t G_{t+1}), l_t = 0 at done_t and at t = T-1."""
    r_t, discount_t, v_t = (np.asarray(x, np.float64) for x in (r_t, discount_t, v_t))
    done_t = np.asarray(done_t).astype(bool)
    T = len(r_t)
    lam = np.broadcast_to(np.asarray(lambda_, np.float64), (T,))
    g = np.zeros(T)
    for t in reversed(range(T)):
        if done_t[t] or t == T - 1:
            g[t] = r_t[t] + discount_t[t] * v_t[t]
        else:
            g[t] = r_t[t] + discount_t[t] * ((1 - lam[t]) * v_t[t] + lam[t] * g[t + 1])
    return g


def np_gae_delta_recursion(r_t, discount_t, v_tm1, v_t, done_t, lambda_):
    """Schulman et al. form: A_t = delta_t + discount_t * l_t * A_{t+1}, l_t = 0 at ends.

    Equals lambda-return - v_tm1 on streams whose values are consistent
    (v_t[t] == v_tm1[t+1] wherever the episode goes on), which is what a real rollout gives.
    """
    r_t, discount_t, v_tm1, v_t = (np.asarray(x, np.float64) for x in (r_t, discount_t, v_tm1, v_t))
    done_t = np.asarray(done_t).astype(bool)
    T = len(r_t)
    lam = np.broadcast_to(np.asarray(lambda_, np.float64), (T,))
    adv = np.zeros(T)
    next_adv = 0.0
    for t in reversed(range(T)):
        delta = r_t[t] + discount_t[t] * v_t[t] - v_tm1[t]
        lam_t = 0.0 if (done_t[t] or t == T - 1) else lam[t]
        adv[t] = delta + discount_t[t] * lam_t * next_adv
        next_adv = adv[t]
    return adv


def np_td_errors(r_t, discount_t, v_tm1, v_t):
    r_t, discount_t, v_tm1, v_t = (np.asarray(x, np.float64) for x in (r_t, discount_t, v_tm1, v_t))
    return r_t + discount_t * v_t - v_tm1


def np_standardize(x, mask=None, eps=1e-8):
    x = np.asarray(x, np.float64)
    mask = np.ones(x.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    out = np.zeros_like(x)
    sel = x[mask]
    out[mask] = (sel - sel.mean()) / (sel.std() + eps)
    return out


# --------------------------------------------------------------------------------------------
# The one-stream implementation before [T, ...] support (rljax 0.1.0, verbatim but for the
# chex checks): [T] calls must give its results bit for bit.
# --------------------------------------------------------------------------------------------


def _legacy_lambda_returns(r_t, discount_t, v_t, done_t, lambda_=1.0, stop_target_gradients=True):
    chex.assert_rank([r_t, discount_t, v_t, done_t], 1)
    dtype = jnp.result_type(r_t, discount_t, v_t)
    r_t, discount_t, v_t = (x.astype(dtype) for x in (r_t, discount_t, v_t))
    lambda_ = jnp.ones_like(r_t) * jnp.asarray(lambda_).astype(r_t.dtype)
    not_done = 1.0 - jnp.asarray(done_t).astype(r_t.dtype)
    lambda_ = lambda_ * not_done
    lambda_ = lambda_.at[-1].set(0.0)

    def _body(acc, xs):
        r, discount, v, lam = xs
        acc = r + discount * ((1.0 - lam) * v + lam * acc)
        return acc, acc

    _, out = jax.lax.scan(
        _body, jnp.zeros_like(r_t[-1]), (r_t, discount_t, v_t, lambda_), reverse=True
    )
    return jax.lax.stop_gradient(out) if stop_target_gradients else out


def _legacy_discounted_returns(r_t, discount_t, v_t, done_t, stop_target_gradients=True):
    return _legacy_lambda_returns(r_t, discount_t, v_t, done_t, 1.0, stop_target_gradients)


def _legacy_gae_advantages(
    r_t, discount_t, v_tm1, v_t, done_t, lambda_, stop_target_gradients=True
):
    ret = _legacy_lambda_returns(r_t, discount_t, v_t, done_t, lambda_, False)
    adv = ret - v_tm1
    return jax.lax.stop_gradient(adv) if stop_target_gradients else adv


def _legacy_td_errors(r_t, discount_t, v_tm1, v_t, stop_target_gradients=True):
    chex.assert_rank([r_t, discount_t, v_tm1, v_t], 1)
    target = r_t + discount_t * v_t
    if stop_target_gradients:
        target = jax.lax.stop_gradient(target)
    return target - v_tm1


def _legacy_standardize(x, mask=None, eps=1e-8):
    if mask is None:
        mask = jnp.ones_like(x)
    m = jnp.asarray(mask).astype(bool)
    x = jnp.where(m, x, 0.0)
    n = jnp.maximum(m.sum(), 1).astype(x.dtype)
    mean = x.sum() / n
    var = jnp.where(m, jnp.square(x - mean), 0.0).sum() / n
    return jnp.where(m, (x - mean) / (jnp.sqrt(var) + eps), 0.0)


# --------------------------------------------------------------------------------------------
# Random streams with episode boundaries inside.
# --------------------------------------------------------------------------------------------


def make_stream(seed, T, gamma=0.9):
    """A random stream with terminations and truncations mixed, as a rollout would give it.

    Values are consistent: v_tm1[t + 1] == v_t[t] where the episode goes on; at an episode
    end v_t[t] is the value of the final observation and v_tm1[t + 1] that of a new episode's
    first observation (a different number). Returned as float32 / bool arrays.
    """
    rng = np.random.default_rng(seed)
    r_t = rng.normal(size=T)
    terminated = rng.random(T) < 0.15
    truncated = rng.random(T) < 0.15  # may coincide with a termination (gymnax allows both)
    if T >= 5:  # make sure each kind of boundary is there
        terminated[T // 3] = True
        truncated[T // 3] = False
        truncated[(2 * T) // 3] = True
        terminated[(2 * T) // 3] = False
    done = terminated | truncated
    state_values = rng.normal(size=T + 1)
    v_tm1 = state_values[:T].copy()
    v_t = state_values[1:].copy()
    v_t[done] = rng.normal(size=int(done.sum()))  # value of the final observation
    discount_t = gamma * (1.0 - terminated)
    f32 = lambda x: np.asarray(x, np.float32)
    return dict(
        r_t=f32(r_t),
        discount_t=f32(discount_t),
        v_tm1=f32(v_tm1),
        v_t=f32(v_t),
        done_t=done,
        terminated=terminated,
        truncated=truncated,
    )


def make_batch(seed, B, T, gamma=0.9):
    streams = [make_stream(seed * 1000 + b, T, gamma) for b in range(B)]
    return {k: np.stack([s[k] for s in streams]) for k in streams[0]}


# A tiny hand-checked stream, gamma = 0.9, T = 4:
#   step 0 truncated (done, not terminated: bootstraps from v_t[0] = 10),
#   step 2 terminated (discount 0), step 3 is the stream's last step (bootstraps from 40).
HAND = dict(
    r_t=np.array([1.0, 2.0, 3.0, 4.0], np.float32),
    discount_t=np.array([0.9, 0.9, 0.0, 0.9], np.float32),
    v_tm1=np.array([5.0, 8.0, 20.0, 30.0], np.float32),
    v_t=np.array([10.0, 20.0, 30.0, 40.0], np.float32),
    done_t=np.array([True, False, True, False]),
)


class ReturnsTest(chex.TestCase):
    # ---------------------------------------------------------------- hand-checked cases

    @chex.variants(with_jit=True, without_jit=True)
    def test_discounted_returns_hand_checked(self):
        h = HAND
        # G3 = 4 + .9*40 = 40;  G2 = 3 (terminated);  G1 = 2 + .9*3 = 4.7;
        # G0 = 1 + .9*10 = 10 (truncated: bootstrap from v_t[0], not from G1).
        expected = np.array([10.0, 4.7, 3.0, 40.0])
        fn = self.variant(returns.discounted_returns)
        out = fn(h["r_t"], h["discount_t"], h["v_t"], h["done_t"])
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_returns_hand_checked(self):
        h = HAND
        # lambda = 0.5: G3 = 40;  G2 = 3;  G1 = 2 + .9*(.5*20 + .5*3) = 12.35;  G0 = 1 + .9*10.
        expected = np.array([10.0, 12.35, 3.0, 40.0])
        fn = self.variant(returns.lambda_returns)
        out = fn(h["r_t"], h["discount_t"], h["v_t"], h["done_t"], 0.5)
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_advantages_hand_checked(self):
        h = HAND
        # delta = r + discount*v_t - v_tm1 = [5, 12, -17, 10];
        # A3 = 10;  A2 = -17;  A1 = 12 + .9*.5*(-17) = 4.35;  A0 = 5 (episode end).
        expected = np.array([5.0, 4.35, -17.0, 10.0])
        fn = self.variant(returns.gae_advantages)
        out = fn(h["r_t"], h["discount_t"], h["v_tm1"], h["v_t"], h["done_t"], 0.5)
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_td_errors_hand_checked(self):
        h = HAND
        expected = np.array([5.0, 12.0, -17.0, 10.0])
        fn = self.variant(returns.td_errors)
        out = fn(h["r_t"], h["discount_t"], h["v_tm1"], h["v_t"])
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_standardize_hand_checked(self):
        x = np.array([1.0, 2.0, 3.0, 100.0], np.float32)
        mask = np.array([True, True, True, False])
        # mean 2, population std sqrt(2/3); the masked 100 is ignored and returned as 0.
        s = np.sqrt(1.5)
        expected = np.array([-s, 0.0, s, 0.0])
        out = self.variant(returns.standardize)(x, mask)
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_standardize_constant_input_gives_zeros_not_rounding_noise(self):
        fn = self.variant(returns.standardize)
        rng = np.random.default_rng(0)
        for x in (
            np.full(7, 500.0, np.float32),  # the mean's rounding error is not signal
            (500.0 + 1e-4 * rng.standard_normal(64)).astype(np.float32),
            np.full((5, 3), -0.1, np.float32),
            np.zeros(4, np.float32),
        ):
            np.testing.assert_array_equal(fn(x), np.zeros_like(x))
        mask = np.array([True, True, False])
        np.testing.assert_array_equal(fn(np.array([3.0, 3.0, 9.0], np.float32), mask), 0.0)
        # A real spread, however small in absolute terms, is still standardised.
        x = np.array([1e-6, 2e-6, 3e-6], np.float32)
        np.testing.assert_allclose(fn(x), np_standardize(x), rtol=1e-3, atol=1e-3)

    # ---------------------------------------------------------------- numpy references

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("T1", 1), ("T7", 7), ("T50", 50))
    def test_discounted_returns_vs_numpy(self, T):
        fn = self.variant(returns.discounted_returns)
        for seed in range(4):
            s = make_stream(seed, T)
            out = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
            ref = np_discounted_returns(s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
            chex.assert_shape(out, (T,))
            np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("T1", 1), ("T7", 7), ("T50", 50))
    def test_lambda_returns_vs_numpy(self, T):
        fn = self.variant(returns.lambda_returns)
        for seed in range(4):
            s = make_stream(seed, T, gamma=0.99)
            for lam in LAMBDAS:
                out = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
                ref = np_lambda_returns(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
                np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL, err_msg=f"lambda={lam}")

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("T1", 1), ("T7", 7), ("T50", 50))
    def test_gae_advantages_vs_numpy(self, T):
        fn = self.variant(returns.gae_advantages)
        for seed in range(4):
            s = make_stream(seed, T, gamma=0.99)
            args = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"], s["done_t"])
            for lam in LAMBDAS:
                out = fn(*args, lam)
                ref = np_gae_delta_recursion(*args, lam)
                np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL, err_msg=f"lambda={lam}")

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("T1", 1), ("T7", 7), ("T50", 50))
    def test_td_errors_vs_numpy(self, T):
        fn = self.variant(returns.td_errors)
        for seed in range(4):
            s = make_stream(seed, T)
            args = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"])
            np.testing.assert_allclose(fn(*args), np_td_errors(*args), rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_standardize_vs_numpy(self):
        fn = self.variant(returns.standardize)
        rng = np.random.default_rng(0)
        for shape in [(50,), (6, 7)]:
            x = (3.0 + 5.0 * rng.normal(size=shape)).astype(np.float32)
            mask = rng.random(shape) < 0.7
            out_masked = np.asarray(fn(x, mask))
            np.testing.assert_allclose(out_masked, np_standardize(x, mask), rtol=RTOL, atol=ATOL)
            np.testing.assert_array_equal(out_masked[~mask], 0.0)
            np.testing.assert_allclose(out_masked[mask].mean(), 0.0, atol=1e-5)
            np.testing.assert_allclose(out_masked[mask].std(), 1.0, rtol=1e-5)
            # A 0/1 float mask means the same as a bool mask.
            np.testing.assert_allclose(fn(x, mask.astype(np.float32)), out_masked, atol=1e-6)
            out_all = np.asarray(fn(x))
            np.testing.assert_allclose(out_all, np_standardize(x), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(out_all.mean(), 0.0, atol=1e-5)
            np.testing.assert_allclose(out_all.std(), 1.0, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_as_array(self):
        T = 20
        fn = self.variant(returns.lambda_returns)
        gae = self.variant(returns.gae_advantages)
        for seed in range(3):
            s = make_stream(seed, T)
            lam = np.random.default_rng(100 + seed).random(T).astype(np.float32)
            out = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
            ref = np_lambda_returns(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
            np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
            args = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"], s["done_t"])
            np.testing.assert_allclose(
                gae(*args, lam), np_gae_delta_recursion(*args, lam), rtol=RTOL, atol=ATOL
            )
        # A constant [T] array is the same as the scalar.
        s = make_stream(0, T)
        const = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], np.full(T, 0.7, np.float32))
        scalar = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], 0.7)
        np.testing.assert_allclose(const, scalar, rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_done_as_float(self):
        s = make_stream(3, 30)
        done_f = s["done_t"].astype(np.float32)
        fn = self.variant(returns.lambda_returns)
        np.testing.assert_allclose(
            fn(s["r_t"], s["discount_t"], s["v_t"], done_f, 0.8),
            fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], 0.8),
            rtol=1e-6,
            atol=1e-6,
        )

    # ---------------------------------------------------------------- vmap over streams

    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_streams(self):
        B, T = 5, 23
        b = make_batch(7, B, T, gamma=0.97)
        lam = 0.9
        disc = self.variant(jax.vmap(returns.discounted_returns))
        lamr = self.variant(jax.vmap(returns.lambda_returns, in_axes=(0, 0, 0, 0, None)))
        gae = self.variant(jax.vmap(returns.gae_advantages, in_axes=(0, 0, 0, 0, 0, None)))
        td = self.variant(jax.vmap(returns.td_errors))
        out_disc = disc(b["r_t"], b["discount_t"], b["v_t"], b["done_t"])
        out_lam = lamr(b["r_t"], b["discount_t"], b["v_t"], b["done_t"], lam)
        out_gae = gae(b["r_t"], b["discount_t"], b["v_tm1"], b["v_t"], b["done_t"], lam)
        out_td = td(b["r_t"], b["discount_t"], b["v_tm1"], b["v_t"])
        for out in (out_disc, out_lam, out_gae, out_td):
            chex.assert_shape(out, (B, T))
        for i in range(B):
            s = {k: v[i] for k, v in b.items()}
            args4 = (s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
            args5 = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"], s["done_t"])
            close = lambda a, r: np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL)
            close(out_disc[i], np_discounted_returns(*args4))
            close(out_lam[i], np_lambda_returns(*args4, lam))
            close(out_gae[i], np_gae_delta_recursion(*args5, lam))
            close(out_td[i], np_td_errors(*args5[:4]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_lambda_sweep(self):
        # A hyperparameter sweep is a vmap over lambda_ with the same stream.
        s = make_stream(11, 15)
        lams = np.array(LAMBDAS, np.float32)
        fn = self.variant(jax.vmap(returns.lambda_returns, in_axes=(None, None, None, None, 0)))
        out = fn(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lams)
        chex.assert_shape(out, (len(lams), 15))
        for i, lam in enumerate(LAMBDAS):
            ref = np_lambda_returns(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
            np.testing.assert_allclose(out[i], ref, rtol=RTOL, atol=ATOL)

    # ---------------------------------------------------------------- truncation semantics

    def test_truncation_bootstraps_termination_does_not(self):
        # Same rewards and values; step 1 ends the episode either by truncation or termination.
        gamma = 0.9
        r_t = np.array([1.0, 1.0, 1.0], np.float32)
        v_t = np.array([2.0, 5.0, 3.0], np.float32)
        done = np.array([False, True, False])
        disc_trunc = np.array([gamma, gamma, gamma], np.float32)  # truncated: not terminated
        disc_term = np.array([gamma, 0.0, gamma], np.float32)
        g_trunc = returns.discounted_returns(r_t, disc_trunc, v_t, done)
        g_term = returns.discounted_returns(r_t, disc_term, v_t, done)
        np.testing.assert_allclose(g_trunc[1], 1.0 + gamma * 5.0, rtol=RTOL)
        np.testing.assert_allclose(g_term[1], 1.0, rtol=RTOL)
        # The recursion is cut at the boundary either way: step 2 does not leak into step 1.
        np.testing.assert_allclose(g_trunc[0], 1.0 + gamma * (1.0 + gamma * 5.0), rtol=RTOL)
        np.testing.assert_allclose(g_trunc[2], 1.0 + gamma * 3.0, rtol=RTOL)

    # ---------------------------------------------------------------- gradients

    def test_lambda_returns_gradients(self):
        s = make_stream(5, 12)
        r, d, v, done = s["r_t"], s["discount_t"], s["v_t"], s["done_t"]
        for lam in (0.0, 0.6, 1.0):

            def total(v_t, r_t, stop, lam=lam):
                return returns.lambda_returns(r_t, d, v_t, done, lam, stop).sum()

            g_v, g_r = jax.grad(total, argnums=(0, 1))(v, r, True)
            np.testing.assert_array_equal(g_v, 0.0)
            np.testing.assert_array_equal(g_r, 0.0)
            g_v, g_r = jax.grad(total, argnums=(0, 1))(v, r, False)
            assert np.abs(g_v).sum() > 0 and np.abs(g_r).sum() > 0
            # Unstopped, G is linear in v_t: its Jacobian columns are the returns of unit values.
            jac = jax.jacfwd(
                lambda v_t, lam=lam: returns.lambda_returns(r, d, v_t, done, lam, False)
            )(v)
            ref = np.stack(
                [np_lambda_returns(np.zeros(12), d, np.eye(12)[i], done, lam) for i in range(12)],
                axis=1,
            )
            np.testing.assert_allclose(jac, ref, rtol=RTOL, atol=1e-6)
        # discounted_returns forwards the flag.
        g = jax.grad(lambda v_t: returns.discounted_returns(r, d, v_t, done).sum())(v)
        np.testing.assert_array_equal(g, 0.0)
        g = jax.grad(lambda v_t: returns.discounted_returns(r, d, v_t, done, False).sum())(v)
        assert np.abs(g).sum() > 0

    def test_gae_gradients(self):
        s = make_stream(6, 12)
        r, d, done = s["r_t"], s["discount_t"], s["done_t"]

        def total(v_tm1, v_t, stop):
            return returns.gae_advantages(r, d, v_tm1, v_t, done, 0.9, stop).sum()

        g_tm1, g_t = jax.grad(total, argnums=(0, 1))(s["v_tm1"], s["v_t"], True)
        np.testing.assert_array_equal(g_tm1, 0.0)
        np.testing.assert_array_equal(g_t, 0.0)
        g_tm1, g_t = jax.grad(total, argnums=(0, 1))(s["v_tm1"], s["v_t"], False)
        np.testing.assert_allclose(g_tm1, -1.0)
        assert np.abs(g_t).sum() > 0

    def test_td_errors_gradients(self):
        s = make_stream(7, 12)
        r, d = s["r_t"], s["discount_t"]

        def total(v_tm1, v_t, stop):
            return returns.td_errors(r, d, v_tm1, v_t, stop).sum()

        g_tm1, g_t = jax.grad(total, argnums=(0, 1))(s["v_tm1"], s["v_t"], True)
        np.testing.assert_array_equal(g_tm1, -1.0)
        np.testing.assert_array_equal(g_t, 0.0)
        g_tm1, g_t = jax.grad(total, argnums=(0, 1))(s["v_tm1"], s["v_t"], False)
        np.testing.assert_array_equal(g_tm1, -1.0)
        np.testing.assert_allclose(g_t, d, rtol=1e-6)
        assert np.abs(g_t).sum() > 0

    # ---------------------------------------------------------------- argument checks

    def test_bad_calls_raise_value_errors_that_name_the_argument(self):
        f = np.zeros(5, np.float32)
        f6 = np.zeros(6, np.float32)
        done = np.zeros(5, bool)
        f53 = np.zeros((5, 3), np.float32)
        d53 = np.zeros((5, 3), bool)
        cases = [
            (
                lambda: returns.lambda_returns(f, f, f6, done, 0.9),
                r"lambda_returns: v_t has shape \(6,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.lambda_returns(f, f, f, np.zeros(6, bool), 0.9),
                r"lambda_returns: done_t has shape \(6,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.lambda_returns(f53, f53, f53, d53, np.ones(4, np.float32)),
                r"lambda_ must be a scalar or have r_t's shape \(5, 3\), got \(4,\)",
            ),
            (
                lambda: returns.lambda_returns(f53, f53, f53, d53, np.ones(5, np.float32)),
                r"lambda_ must be a scalar or have r_t's shape \(5, 3\), got \(5,\)",
            ),
            (
                lambda: returns.lambda_returns(f, f, f, done, np.zeros((5, 1), np.float32)),
                r"lambda_ must be a scalar or have r_t's shape \(5,\), got \(5, 1\)",
            ),
            (
                lambda: returns.lambda_returns(np.zeros(5, np.int32), f, f, done, 0.9),
                r"lambda_returns: r_t must be a floating-point array, got dtype int32",
            ),
            (
                lambda: returns.lambda_returns(np.float32(1.0), f, f, done),
                r"r_t must have a leading time axis \(rank >= 1\), got rank 0",
            ),
            (
                lambda: returns.lambda_returns(np.zeros(0, np.float32), f, f, done),
                r"r_t must have at least one time step, got shape \(0,\)",
            ),
            (
                lambda: returns.discounted_returns(f, f6, f, done),
                r"discounted_returns: discount_t has shape \(6,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.discounted_returns(f53, f53, f53, done),
                r"discounted_returns: done_t has shape \(5,\), r_t has \(5, 3\)",
            ),
            (
                lambda: returns.gae_advantages(f, f, f6, f, done, 0.9),
                r"gae_advantages: v_tm1 has shape \(6,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.gae_advantages(f, f, f, f, np.zeros(4, bool), 0.9),
                r"gae_advantages: done_t has shape \(4,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.gae_advantages(f, f, f, f, done, np.ones(3, np.float32)),
                r"gae_advantages: lambda_ must be a scalar or have r_t's shape \(5,\), got",
            ),
            (
                lambda: returns.gae_advantages(f, f, np.zeros(5, np.int32), f, done, 0.9),
                r"gae_advantages: v_tm1 must be a floating-point array",
            ),
            (
                lambda: returns.td_errors(f, f, f, f6),
                r"td_errors: v_t has shape \(6,\), r_t has \(5,\)",
            ),
            (
                lambda: returns.td_errors(np.float32(0.0), f, f, f),
                r"td_errors: r_t must have a leading time axis \(rank >= 1\), got rank 0",
            ),
            (
                lambda: returns.standardize(f, np.ones(6, bool)),
                r"standardize: mask has shape \(6,\), x has \(5,\)",
            ),
            (
                lambda: returns.standardize(np.zeros(5, np.int32)),
                r"standardize: x must be a floating-point array, got dtype int32",
            ),
        ]
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
        # The checks fire at trace time under jit (shapes are static), with the same message.
        with pytest.raises(ValueError, match=r"td_errors: v_t has shape \(6,\), r_t has"):
            jax.jit(returns.td_errors)(f, f, f, f6)
        # ...and under vmap, where they see one stream's shapes.
        with pytest.raises(ValueError, match=r"lambda_returns: v_t has shape \(6,\), r_t"):
            jax.vmap(returns.lambda_returns, in_axes=(0, 0, 0, 0, None))(
                f53.T, f53.T, np.zeros((3, 6), np.float32), d53.T, 0.9
            )


# --------------------------------------------------------------------------------------------
# [T] calls are bit for bit what they were; [T, ...] calls are vmaps of [T] calls, bit for bit.
# --------------------------------------------------------------------------------------------


def _jit_static(f):
    return bitwise.jit(f, static_argnames=("stop_target_gradients",))


def _one_stream_calls(s, lam):
    """(new, legacy, args, index of v_t in args) for every return function on stream ``s``."""
    a4 = (s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
    a5 = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"], s["done_t"])
    a_td = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"])
    return [
        (returns.discounted_returns, _legacy_discounted_returns, a4, 2),
        (returns.lambda_returns, _legacy_lambda_returns, (*a4, lam), 2),
        (returns.gae_advantages, _legacy_gae_advantages, (*a5, lam), 3),
        (returns.td_errors, _legacy_td_errors, a_td, 3),
    ]


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
def test_one_stream_bitwise_equal_to_previous_implementation(jit):
    wrap = _jit_static if jit else (lambda f: f)
    wrap_g = bitwise.jit if jit else (lambda f: f)
    # Eagerly (no jit) a 64-step scan is slow to trace op by op; jit covers the long stream.
    for seed, T in [(0, 1), (1, 7), (2, 64)] if jit else [(0, 1), (1, 7)]:
        s = make_stream(seed, T, gamma=0.99)
        lam_array = np.random.default_rng(seed).random(T).astype(np.float32)
        for lam in (0.0, 0.95, 1.0, lam_array):
            for new, old, args, v_index in _one_stream_calls(s, lam):
                np.testing.assert_array_equal(wrap(new)(*args), wrap(old)(*args))
                # Unstopped targets: the same values and the same gradients, bit for bit.
                np.testing.assert_array_equal(
                    wrap(new)(*args, stop_target_gradients=False),
                    wrap(old)(*args, stop_target_gradients=False),
                )

                def grad_v(f, args=args, i=v_index):
                    def total(v):
                        a = list(args)
                        a[i] = v
                        return f(*a, stop_target_gradients=False).sum()

                    return jax.grad(total)

                np.testing.assert_array_equal(
                    wrap_g(grad_v(new))(s["v_t"]), wrap_g(grad_v(old))(s["v_t"])
                )
        # done_t as a 0/1 float, too.
        done_f = s["done_t"].astype(np.float32)
        args = (s["r_t"], s["discount_t"], s["v_t"], done_f, 0.9)
        np.testing.assert_array_equal(
            wrap(returns.lambda_returns)(*args), wrap(_legacy_lambda_returns)(*args)
        )
    rng = np.random.default_rng(5)
    for shape in [(50,), (6, 7)]:
        x = (3.0 + 5.0 * rng.normal(size=shape)).astype(np.float32)
        mask = rng.random(shape) < 0.7
        np.testing.assert_array_equal(
            wrap_g(returns.standardize)(x, mask), wrap_g(_legacy_standardize)(x, mask)
        )
        np.testing.assert_array_equal(
            wrap_g(returns.standardize)(x), wrap_g(_legacy_standardize)(x)
        )


def _streams(seed, T, trailing, gamma=0.97):
    """Time-major [T, *trailing] arrays: independent random streams stacked on trailing axes."""
    n = int(np.prod(trailing))
    b = make_batch(seed, n, T, gamma)  # [n, T]
    return {k: np.moveaxis(v, 0, -1).reshape(T, *trailing) for k, v in b.items()}


def _vmap_trailing(fn, n_trailing, in_axes):
    """vmap ``fn`` over each trailing axis of time-major arguments (axis 1, then 1 again)."""
    for _ in range(n_trailing):
        axes = tuple(None if a is None else 1 for a in in_axes)
        fn = jax.vmap(fn, in_axes=axes, out_axes=1)
    return fn


@pytest.mark.parametrize("trailing", [(3,), (2, 3)], ids=["TN", "TNM"])
@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
def test_time_major_streams_equal_vmap_bitwise(trailing, jit):
    wrap = _jit_static if jit else (lambda f: f)
    wrap_g = bitwise.jit if jit else (lambda f: f)
    T = 17
    s = _streams(3, T, trailing)
    k = len(trailing)
    lam_arr = np.random.default_rng(9).random((T, *trailing)).astype(np.float32)
    a4 = (s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
    a5 = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"], s["done_t"])
    a_td = (s["r_t"], s["discount_t"], s["v_tm1"], s["v_t"])
    cases = [
        (returns.discounted_returns, a4, (0, 0, 0, 0)),
        (returns.lambda_returns, (*a4, 0.9), (0, 0, 0, 0, None)),
        (returns.lambda_returns, (*a4, lam_arr), (0, 0, 0, 0, 0)),
        (returns.gae_advantages, (*a5, 0.9), (0, 0, 0, 0, 0, None)),
        (returns.gae_advantages, (*a5, lam_arr), (0, 0, 0, 0, 0, 0)),
        (returns.td_errors, a_td, (0, 0, 0, 0)),
    ]
    for fn, args, in_axes in cases:
        out = wrap(fn)(*args)
        chex.assert_shape(out, (T, *trailing))
        ref = wrap(_vmap_trailing(fn, k, in_axes))(*args)
        np.testing.assert_array_equal(out, ref, err_msg=fn.__name__)
        # Unstopped targets, and their gradients into v_t: also vmaps, bit for bit.
        unstopped = functools.partial(fn, stop_target_gradients=False)
        np.testing.assert_array_equal(
            wrap_g(unstopped)(*args), wrap_g(_vmap_trailing(unstopped, k, in_axes))(*args)
        )
        i_v = 2 if fn in (returns.discounted_returns, returns.lambda_returns) else 3

        def grad_v(f, args=args, i_v=i_v):
            def total(v):
                return f(*args[:i_v], v, *args[i_v + 1 :]).sum()

            return jax.grad(total)

        np.testing.assert_array_equal(
            wrap_g(grad_v(unstopped))(s["v_t"]),
            wrap_g(grad_v(_vmap_trailing(unstopped, k, in_axes)))(s["v_t"]),
        )
    # The trailing axes are independent streams: each equals the numpy loop on its own.
    out_lam = np.asarray(returns.lambda_returns(*a4, lam_arr))
    out_gae = np.asarray(returns.gae_advantages(*a5, 0.9))
    out_disc = np.asarray(returns.discounted_returns(*a4))
    for idx in np.ndindex(*trailing):
        col = (slice(None), *idx)
        c4 = tuple(x[col] for x in a4)
        c5 = tuple(x[col] for x in a5)
        close = lambda a, r: np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL)
        close(out_lam[col], np_lambda_returns(*c4, lam_arr[col]))
        close(out_gae[col], np_gae_delta_recursion(*c5, 0.9))
        close(out_disc[col], np_discounted_returns(*c4))


def test_time_major_streams_hand_checked():
    # Two streams side by side, [T=4, 2]: HAND, and HAND with every step terminated.
    h = HAND
    both = lambda a, b: np.stack([a, b], axis=1)
    zeros = np.zeros(4, np.float32)
    g = returns.discounted_returns(
        both(h["r_t"], h["r_t"]),
        both(h["discount_t"], zeros),
        both(h["v_t"], h["v_t"]),
        both(h["done_t"], np.ones(4, bool)),
    )
    expected = np.stack([[10.0, 4.7, 3.0, 40.0], [1.0, 2.0, 3.0, 4.0]], axis=1)
    np.testing.assert_allclose(g, expected, rtol=RTOL, atol=ATOL)
    # lambda_ per step and stream: 0.5 on the first stream as in the hand-checked case.
    lam = both(np.full(4, 0.5, np.float32), np.full(4, 0.3, np.float32))
    g = returns.lambda_returns(
        both(h["r_t"], h["r_t"]),
        both(h["discount_t"], zeros),
        both(h["v_t"], h["v_t"]),
        both(h["done_t"], h["done_t"]),
        lam,
    )
    np.testing.assert_allclose(g[:, 0], [10.0, 12.35, 3.0, 40.0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g[:, 1], h["r_t"], rtol=RTOL, atol=ATOL)


def test_time_major_gradients_into_targets_are_zero_when_stopped():
    s = _streams(4, 9, (3,))
    r, d, done = s["r_t"], s["discount_t"], s["done_t"]
    for stop in (True, False):
        g_v = jax.grad(lambda v, st=stop: returns.lambda_returns(r, d, v, done, 0.7, st).sum())(
            s["v_t"]
        )
        g_gae = jax.grad(
            lambda v, st=stop: returns.gae_advantages(r, d, s["v_tm1"], v, done, 0.7, st).sum()
        )(s["v_t"])
        g_td = jax.grad(lambda v, st=stop: returns.td_errors(r, d, s["v_tm1"], v, st).sum())(
            s["v_t"]
        )
        for g in (g_v, g_gae, g_td):
            if stop:
                np.testing.assert_array_equal(g, 0.0)
            else:
                assert np.abs(g).sum() > 0


# --------------------------------------------------------------------------------------------
# Identities as properties (hypothesis): small sizes, random streams from a seed.
# --------------------------------------------------------------------------------------------

# Jitted once here: hypothesis draws many lengths, and jit caches one compilation per length.
_disc = jax.jit(returns.discounted_returns)
_lamr = jax.jit(returns.lambda_returns)
_gae = jax.jit(returns.gae_advantages)
_td = jax.jit(returns.td_errors)

_seeds = st.integers(0, 2**31 - 1)
_lengths = st.integers(1, 12)
_unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(seed=_seeds, T=_lengths, gamma=_unit)
def test_discounted_equals_lambda_one(seed, T, gamma):
    s = make_stream(seed, T, gamma)
    args = (s["r_t"], s["discount_t"], s["v_t"], s["done_t"])
    np.testing.assert_allclose(_disc(*args), _lamr(*args, 1.0), rtol=0, atol=0)
    np.testing.assert_allclose(_disc(*args), np_discounted_returns(*args), rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(seed=_seeds, T=_lengths, gamma=_unit, lam=_unit)
def test_gae_plus_value_equals_lambda_returns(seed, T, gamma, lam):
    # Holds for any v_tm1 (not only consistent ones): scramble v_tm1 to make sure.
    s = make_stream(seed, T, gamma)
    v_tm1 = np.random.default_rng(seed).permutation(s["v_tm1"]) * np.float32(3.0)
    adv = _gae(s["r_t"], s["discount_t"], v_tm1, s["v_t"], s["done_t"], lam)
    g = _lamr(s["r_t"], s["discount_t"], s["v_t"], s["done_t"], lam)
    np.testing.assert_allclose(adv + v_tm1, g, rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(seed=_seeds, T=_lengths, gamma=_unit)
def test_gae_lambda_zero_equals_td_errors(seed, T, gamma):
    # At lambda 0, A_t = r_t + discount_t v_t - v_tm1 everywhere, whatever done_t says.
    s = make_stream(seed, T, gamma)
    v_tm1 = np.random.default_rng(seed).permutation(s["v_tm1"])
    adv = _gae(s["r_t"], s["discount_t"], v_tm1, s["v_t"], s["done_t"], 0.0)
    td = _td(s["r_t"], s["discount_t"], v_tm1, s["v_t"])
    np.testing.assert_allclose(adv, td, rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(seed=_seeds, T=_lengths, lam=_unit)
def test_gamma_zero_and_all_terminated_give_rewards(seed, T, lam):
    s = make_stream(seed, T)
    zeros = np.zeros(T, np.float32)
    # gamma = 0: discount is 0 everywhere, returns are the rewards.
    g = _lamr(s["r_t"], zeros, s["v_t"], s["done_t"], lam)
    np.testing.assert_allclose(g, s["r_t"], rtol=0, atol=1e-7)
    # every step terminated: discount 0 and done everywhere.
    g = _lamr(s["r_t"], zeros, s["v_t"], np.ones(T, bool), lam)
    np.testing.assert_allclose(g, s["r_t"], rtol=0, atol=1e-7)
    # every step truncated: done everywhere, discount gamma: one-step bootstrap from v_t.
    gamma = np.float32(0.9)
    full = np.full(T, gamma, np.float32)
    g = _lamr(s["r_t"], full, s["v_t"], np.ones(T, bool), lam)
    np.testing.assert_allclose(g, s["r_t"] + gamma * s["v_t"], rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(seed=_seeds, T=_lengths, gamma=_unit, lam=_unit)
def test_lambda_returns_linear(seed, T, gamma, lam):
    a = make_stream(seed, T, gamma)
    b = make_stream(seed + 1, T, gamma)
    d, done = a["discount_t"], a["done_t"]
    g_a = _lamr(a["r_t"], d, a["v_t"], done, lam)
    g_b = _lamr(b["r_t"], d, b["v_t"], done, lam)
    g_sum = _lamr(2.0 * a["r_t"] + b["r_t"], d, 2.0 * a["v_t"] + b["v_t"], done, lam)
    np.testing.assert_allclose(g_sum, 2.0 * g_a + g_b, rtol=RTOL, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Cross-check with rlax where the functions agree (docs/conventions.md, the rlax table).
# rlax has no done_t: its streams are one episode piece, and an episode end is a zero discount.
# --------------------------------------------------------------------------------------------


def test_cross_check_rlax():
    rlax = pytest.importorskip("rlax")
    rlax_lambda_returns = jax.jit(rlax.lambda_returns)
    rlax_discounted = jax.jit(rlax.discounted_returns)
    rlax_gae = jax.jit(rlax.truncated_generalized_advantage_estimation)
    rlax_td = jax.jit(rlax.td_learning)
    for seed in range(4):
        for T in (1, 9, 40):
            s = make_stream(seed, T, gamma=0.95)
            done = s["terminated"]  # no truncations: every episode end zeroes the discount
            discount = (0.95 * (1.0 - done)).astype(np.float32)
            no_end = np.zeros(T, bool)
            lam_t = np.random.default_rng(seed).random(T).astype(np.float32)
            for lam in (0.0, 0.5, 1.0, lam_t):
                # lambda_returns(r_t, discount_t, v_t, done_t, lambda_) ==
                # rlax.lambda_returns(r_t, discount_t, v_t, lambda_) where done == terminated,
                # and with done_t all False (rlax's setting) whatever the discounts.
                ours = _lamr(s["r_t"], discount, s["v_t"], done, lam)
                theirs = rlax_lambda_returns(s["r_t"], discount, s["v_t"], lam)
                np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
                ours = _lamr(s["r_t"], discount, s["v_t"], no_end, lam)
                np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
                # GAE with a [T + 1] value sequence: where an episode goes on v_t[t] is
                # v_tm1[t + 1]; where it terminated the value is multiplied by discount 0.
                values = np.concatenate([s["v_tm1"], s["v_t"][-1:]])
                v_t = values[1:]
                ours = _gae(s["r_t"], discount, s["v_tm1"], v_t, done, lam)
                theirs = rlax_gae(s["r_t"], discount, lam, values)
                np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
            # discounted_returns(r_t, discount_t, v_t, done_t) == rlax.discounted_returns(
            # r_t, discount_t, v_t): only v_t[-1] bootstraps when nothing ends inside.
            ours = _disc(s["r_t"], discount, s["v_t"], no_end)
            theirs = rlax_discounted(s["r_t"], discount, s["v_t"])
            np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
            # rlax also takes a scalar bootstrap; rljax wants it broadcast to [T].
            theirs = rlax_discounted(s["r_t"], discount, s["v_t"][-1])
            ours = _disc(s["r_t"], discount, np.full(T, s["v_t"][-1]), no_end)
            np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
            # td_errors(r_t, discount_t, v_tm1, v_t) == rlax.td_learning(v_tm1, r_t, ...).
            ours = _td(s["r_t"], discount, s["v_tm1"], s["v_t"])
            theirs = jax.vmap(rlax_td)(s["v_tm1"], s["r_t"], discount, s["v_t"])
            np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_rlax_target_gradients_default_differs():
    """rljax stops target gradients by default; rlax's return functions do not."""
    rlax = pytest.importorskip("rlax")
    s = make_stream(2, 8)
    r, d = s["r_t"], s["discount_t"]
    no_end = np.zeros(8, bool)
    g_ours = jax.grad(lambda v: returns.lambda_returns(r, d, v, no_end, 0.8).sum())(s["v_t"])
    g_rlax = jax.grad(lambda v: rlax.lambda_returns(r, d, v, 0.8).sum())(s["v_t"])
    np.testing.assert_array_equal(g_ours, 0.0)
    assert np.abs(g_rlax).sum() > 0
    # With the flag spelled out, the gradients agree.
    g_ours = jax.grad(lambda v: returns.lambda_returns(r, d, v, no_end, 0.8, False).sum())(s["v_t"])
    np.testing.assert_allclose(g_ours, g_rlax, rtol=RTOL, atol=ATOL)
    g_ours = jax.grad(lambda v: returns.discounted_returns(r, d, v, no_end, False).sum())(s["v_t"])
    g_rlax = jax.grad(lambda v: rlax.discounted_returns(r, d, v).sum())(s["v_t"])
    np.testing.assert_allclose(g_ours, g_rlax, rtol=RTOL, atol=ATOL)


def test_mixed_float_dtypes_do_not_break_the_scan():
    """float32 rewards with float64 values (as under JAX_ENABLE_X64) give one result dtype."""
    with jax.enable_x64(True):
        r = np.ones(4, np.float32)
        v = np.full(4, 0.5, np.float64)
        done = np.array([False, True, False, False])
        out = returns.lambda_returns(r, r * 0.9, v, done, 0.5)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(out[1], 1.0 + 0.9 * 0.5)


def test_lambda_array_must_match_the_stream():
    r = jnp.ones(5)
    with pytest.raises(ValueError, match=r"lambda_ must be a scalar or have r_t's shape \(5,\)"):
        returns.lambda_returns(r, r, r, jnp.zeros(5, bool), jnp.ones(3))


def test_standardize_ignores_non_finite_masked_entries():
    x = jnp.array([1.0, 2.0, 3.0, jnp.nan])
    out = returns.standardize(x, jnp.array([1, 1, 1, 0]))
    assert np.all(np.isfinite(out))
    assert out[3] == 0.0
    np.testing.assert_allclose(out[:3], (np.array([1, 2, 3]) - 2) / np.std([1, 2, 3]), rtol=1e-5)
