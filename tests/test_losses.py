"""Tests for rljax.losses: numpy references, hand-checked cases, gradients."""

import itertools
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax.test_util import check_grads

from rljax import losses

RTOL = 1e-5
ATOL = 1e-6
REDUCTIONS = ("mean", "sum", "none")
B = 16


# --------------------------------------------------------------------------------------------
# numpy float64 references
# --------------------------------------------------------------------------------------------


def np_reduce(per, mask, reduction):
    per = np.asarray(per, np.float64)
    m = np.ones_like(per) if mask is None else np.asarray(mask, np.float64)
    per = per * m
    if reduction == "mean":
        return per.sum() / max(m.sum(), 1.0)
    if reduction == "sum":
        return per.sum()
    return per


def np_huber(x, delta=1.0):
    x = np.asarray(x, np.float64)
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


def np_pg(logp, adv):
    return -np.float64(logp) * np.float64(adv)


def np_value(v, target, kind, delta):
    err = np.float64(target) - np.float64(v)
    return 0.5 * err**2 if kind == "l2" else np_huber(err, delta)


def np_clipped_value(v, old, target, eps):
    v, old, target = np.float64(v), np.float64(old), np.float64(target)
    clipped = old + np.clip(v - old, -eps, eps)
    return 0.5 * np.maximum((v - target) ** 2, (clipped - target) ** 2)


def np_ppo(logp, old, adv, eps):
    ratio = np.exp(np.float64(logp) - np.float64(old))
    adv = np.float64(adv)
    return -np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)


def np_entropy(logits):
    """Categorical entropy of softmax(logits) over the last axis, float64, written out."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.sum(p * np.where(p > 0, logp, 0.0), axis=-1)


def np_dpg(a, dqda):
    a, dqda = np.float64(a), np.float64(dqda)
    return 0.5 * np.sum(((a + dqda) - a) ** 2, axis=-1)


def batch(seed=0):
    """A fixed random batch; values kept away from the kinks of clip / huber / max."""
    rng = np.random.default_rng(seed)
    f32 = lambda x: np.asarray(x, np.float32)
    v = rng.normal(size=B)
    old_v = v + rng.choice([-1.0, 1.0], B) * rng.uniform(0.0, 0.6, B)
    logp = -rng.uniform(0.1, 3.0, B)
    old_logp = logp + rng.uniform(-0.5, 0.5, B)
    return dict(
        logp=f32(logp),
        old_logp=f32(old_logp),
        adv=f32(rng.normal(size=B)),
        logits=f32(2.0 * rng.normal(size=(B, 5))),
        v=f32(v),
        old_v=f32(old_v),
        target=f32(v + 2.0 * rng.normal(size=B)),  # errors on both sides of huber's delta
        mask=rng.random(B) < 0.6,
        a=f32(rng.normal(size=(8, 3))),
        dqda=f32(rng.normal(size=(8, 3))),
        a_mask=rng.random(8) < 0.6,
    )


# Each case: (loss as a function of the batch, mask, reduction) and its numpy reference.
CASES = {
    "policy_gradient": (
        lambda b, m, red: losses.policy_gradient_loss(b["logp"], b["adv"], m, red),
        lambda b: np_pg(b["logp"], b["adv"]),
        "mask",
    ),
    "entropy": (
        lambda b, m, red: losses.entropy_loss(b["logits"], m, red),
        lambda b: -np_entropy(b["logits"]),
        "mask",
    ),
    "value_l2": (
        lambda b, m, red: losses.value_loss(b["v"], b["target"], m, "l2", red),
        lambda b: np_value(b["v"], b["target"], "l2", 1.0),
        "mask",
    ),
    "value_huber": (
        lambda b, m, red: losses.value_loss(b["v"], b["target"], m, "huber", red),
        lambda b: np_value(b["v"], b["target"], "huber", 1.0),
        "mask",
    ),
    "value_huber_delta2": (
        lambda b, m, red: losses.value_loss(b["v"], b["target"], m, "huber", red, huber_delta=2.0),
        lambda b: np_value(b["v"], b["target"], "huber", 2.0),
        "mask",
    ),
    "clipped_value": (
        lambda b, m, red: losses.clipped_value_loss(b["v"], b["old_v"], b["target"], 0.2, m, red),
        lambda b: np_clipped_value(b["v"], b["old_v"], b["target"], 0.2),
        "mask",
    ),
    "ppo_clip": (
        lambda b, m, red: losses.ppo_clip_loss(b["logp"], b["old_logp"], b["adv"], 0.2, m, red),
        lambda b: np_ppo(b["logp"], b["old_logp"], b["adv"], 0.2),
        "mask",
    ),
    "dpg": (
        lambda b, m, red: losses.dpg_loss(b["a"], b["dqda"], m, red),
        lambda b: np_dpg(b["a"], b["dqda"]),
        "a_mask",
    ),
}

_PARAMS = [
    (f"{name}_{red}_{'masked' if masked else 'nomask'}", name, red, masked)
    for name, red, masked in itertools.product(CASES, REDUCTIONS, (False, True))
]


class LossesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*_PARAMS)
    def test_vs_numpy(self, name, reduction, masked):
        loss, ref, mask_key = CASES[name]
        b = batch(0)
        mask = b[mask_key] if masked else None
        out = self.variant(lambda bb, m: loss(bb, m, reduction))(b, mask)
        expected = np_reduce(ref(b), mask, reduction)
        chex.assert_shape(out, np.shape(expected))
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_huber_vs_numpy_and_hand(self):
        x = np.array([-3.0, -1.5, -0.5, 0.0, 0.5, 2.0], np.float32)
        huber = self.variant(losses.huber)
        np.testing.assert_allclose(huber(x), [2.5, 1.0, 0.125, 0.0, 0.125, 1.5], rtol=RTOL)
        np.testing.assert_allclose(huber(x, 2.0), np_huber(x, 2.0), rtol=RTOL)
        np.testing.assert_allclose(huber(np.float32(3.0), 2.0), 4.0, rtol=RTOL)  # 2*(3 - 1)
        np.testing.assert_allclose(huber(np.float32(1.0), 2.0), 0.5, rtol=RTOL)  # quadratic
        y = np.random.default_rng(1).normal(scale=3.0, size=50).astype(np.float32)
        np.testing.assert_allclose(huber(y, 1.5), np_huber(y, 1.5), rtol=RTOL, atol=ATOL)

    # ---------------------------------------------------------------- hand-checked cases

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_checked(self):
        f = lambda *x: np.array(x, np.float32)
        pg = self.variant(losses.policy_gradient_loss, static_argnames="reduction")
        # -mean(logp * adv) = -((-1)(2) + (-2)(3)) / 2 = 4.
        np.testing.assert_allclose(pg(f(-1.0, -2.0), f(2.0, 3.0)), 4.0, rtol=RTOL)
        np.testing.assert_allclose(pg(f(-1.0, -2.0), f(2.0, 3.0), reduction="sum"), 8.0, rtol=RTOL)
        np.testing.assert_allclose(
            pg(f(-1.0, -2.0), f(2.0, 3.0), np.array([True, False])), 2.0, rtol=RTOL
        )

        ent = self.variant(losses.entropy_loss, static_argnames="reduction")
        # Uniform over 2 actions: H = log 2; over 4: log 4; one sure action (-inf logits): 0.
        logits = np.array(
            [[0.0, 0.0, -np.inf, -np.inf], [1.0, 1.0, 1.0, 1.0], [3.0, -np.inf, -np.inf, -np.inf]],
            np.float32,
        )
        h = np.array([np.log(2.0), np.log(4.0), 0.0])
        np.testing.assert_allclose(ent(logits, reduction="none"), -h, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ent(logits), -h.mean(), rtol=RTOL)
        np.testing.assert_allclose(ent(logits, reduction="sum"), -h.sum(), rtol=RTOL)
        w = np.array([1.0, 0.0, 1.0], np.float32)
        np.testing.assert_allclose(ent(logits, w), -np.log(2.0) / 2, rtol=RTOL)
        # p = (0.75, 0.25): H = -(.75 log .75 + .25 log .25) = 0.5623351.
        two = np.log(np.array([[0.75, 0.25]], np.float32))
        np.testing.assert_allclose(ent(two + 7.0, reduction="none"), [-0.5623351], rtol=RTOL)

        vl = self.variant(losses.value_loss, static_argnames=("kind", "reduction"))
        # errors (target - v) = [2, 0.5]: l2 = [2, 0.125]; huber = [1.5, 0.125].
        v, tgt = f(1.0, 2.0), f(3.0, 2.5)
        np.testing.assert_allclose(vl(v, tgt), 1.0625, rtol=RTOL)
        np.testing.assert_allclose(vl(v, tgt, kind="huber"), 0.8125, rtol=RTOL)
        np.testing.assert_allclose(vl(v, tgt, kind="huber", reduction="sum"), 1.625, rtol=RTOL)
        np.testing.assert_allclose(vl(v, tgt, reduction="none"), [2.0, 0.125], rtol=RTOL)
        np.testing.assert_allclose(
            vl(v, tgt, np.array([0.0, 1.0], np.float32), reduction="none"), [0.0, 0.125]
        )

        cv = self.variant(losses.clipped_value_loss, static_argnames="reduction")
        # v moved 0.5 from old = 1 towards... (1) target 3: clipped v = 1.2, .5*max(2.25, 3.24);
        # (2) target 1: .5*max(0.25, 0.04).
        out = cv(f(1.5, 1.5), f(1.0, 1.0), f(3.0, 1.0), 0.2, reduction="none")
        np.testing.assert_allclose(out, [1.62, 0.125], rtol=RTOL)

        ppo = self.variant(losses.ppo_clip_loss, static_argnames="reduction")
        # ratios [1.5, 1.5, .5, .5], advantages [2, -2, 2, -2], eps 0.2:
        # -min(3, 2.4) = -2.4; -min(-3, -2.4) = 3; -min(1, 1.6) = -1; -min(-1, -1.6) = 1.6.
        lr = np.log(f(1.5, 1.5, 0.5, 0.5))
        out = ppo(lr, f(0.0, 0.0, 0.0, 0.0), f(2.0, -2.0, 2.0, -2.0), 0.2, reduction="none")
        np.testing.assert_allclose(out, [-2.4, 3.0, -1.0, 1.6], rtol=RTOL)
        # Only the log-ratio matters.
        out2 = ppo(
            lr - 1.0, f(-1.0, -1.0, -1.0, -1.0), f(2.0, -2.0, 2.0, -2.0), 0.2, reduction="none"
        )
        np.testing.assert_allclose(out2, out, rtol=RTOL)

        dpg = self.variant(losses.dpg_loss, static_argnames="reduction")
        # 0.5 * (0.5^2 + 1^2) = 0.625 for each row, summed over action dims.
        a = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
        dq = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
        np.testing.assert_allclose(dpg(a, dq, reduction="none"), [0.625, 2.0], rtol=RTOL)
        np.testing.assert_allclose(dpg(a, dq), 1.3125, rtol=RTOL)
        np.testing.assert_allclose(dpg(a, dq, np.array([False, True])), 2.0, rtol=RTOL)

    # ---------------------------------------------------------------- masks and reductions

    def test_mask_semantics(self):
        b = batch(2)
        per = np.asarray(losses.value_loss(b["v"], b["target"], reduction="none"))
        m = b["mask"]
        masked_none = np.asarray(losses.value_loss(b["v"], b["target"], m, reduction="none"))
        np.testing.assert_array_equal(masked_none[~m], 0.0)
        np.testing.assert_allclose(masked_none[m], per[m], rtol=1e-6)
        # "mean" is over the unmasked entries, not over all of them.
        mean = losses.value_loss(b["v"], b["target"], m)
        np.testing.assert_allclose(mean, per[m].mean(), rtol=RTOL)
        assert not np.isclose(mean, (per * m).sum() / B)  # not the mean over all B entries
        # A 0/1 float mask is the same as a bool mask.
        np.testing.assert_allclose(
            losses.value_loss(b["v"], b["target"], m.astype(np.float32)), mean, rtol=1e-6
        )
        # Everything masked: 0, not NaN.
        none_on = np.zeros(B, bool)
        for red in ("mean", "sum"):
            out = losses.policy_gradient_loss(b["logp"], b["adv"], none_on, red)
            np.testing.assert_array_equal(out, 0.0)

    def test_bad_reduction_and_kind_raise(self):
        x = np.ones(3, np.float32)
        with pytest.raises(ValueError, match="reduction"):
            losses.policy_gradient_loss(x, x, reduction="max")
        with pytest.raises(ValueError, match="kind"):
            losses.value_loss(x, x, kind="l1")

    def test_bad_calls_raise_value_errors_that_name_the_argument(self):
        x3 = np.ones(3, np.float32)
        x4 = np.ones(4, np.float32)
        i3 = np.ones(3, np.int32)
        l35 = np.zeros((3, 5), np.float32)
        cases = [
            (
                lambda: losses.policy_gradient_loss(x3, x4),
                r"policy_gradient_loss: adv_t has shape \(4,\), logp_t has \(3,\)",
            ),
            (
                lambda: losses.policy_gradient_loss(x3, x3, np.ones(4, bool)),
                r"policy_gradient_loss: mask has shape \(4,\), logp_t has \(3,\)",
            ),
            (
                lambda: losses.policy_gradient_loss(i3, x3),
                r"policy_gradient_loss: logp_t must be a floating-point array, got dtype int32",
            ),
            (
                lambda: losses.policy_gradient_loss(x3, x3, reduction="max"),
                r"policy_gradient_loss: reduction must be 'mean', 'sum' or 'none', got 'max'",
            ),
            (
                lambda: losses.value_loss(x3, x4),
                r"value_loss: target_tm1 has shape \(4,\), v_tm1 has \(3,\)",
            ),
            (
                lambda: losses.clipped_value_loss(x3, x4, x3, 0.2),
                r"clipped_value_loss: old_v_tm1 has shape \(4,\), v_tm1 has \(3,\)",
            ),
            (
                lambda: losses.ppo_clip_loss(x3, x3, x4, 0.2),
                r"ppo_clip_loss: adv_t has shape \(4,\), logp_t has \(3,\)",
            ),
            (
                lambda: losses.dpg_loss(x3, x3),
                r"dpg_loss: a_t must have rank 2 \(\[B, A\]\), got shape \(3,\)",
            ),
            (
                lambda: losses.dpg_loss(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)),
                r"dpg_loss: dqda_t has shape \(2, 2\), a_t has \(2, 3\)",
            ),
            (
                lambda: losses.dpg_loss(
                    np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), np.ones(3, bool)
                ),
                r"dpg_loss: mask must have a_t's batch shape \(2,\), got \(3,\)",
            ),
            (
                lambda: losses.entropy_loss(l35, np.ones(4, bool)),
                r"entropy_loss: w_t must have logits_t's shape without the last axis \(3,\), "
                r"got \(4,\)",
            ),
            (
                # Per-step entropies where logits are expected: rank 1 logits [A] need a
                # scalar w_t, so a [T] weight vector is refused instead of silently used.
                lambda: losses.entropy_loss(x3, x3),
                r"entropy_loss: w_t must have logits_t's shape without the last axis \(\), "
                r"got \(3,\)",
            ),
            (
                lambda: losses.entropy_loss(np.float32(1.0)),
                r"entropy_loss: logits_t must have rank >= 1",
            ),
            (
                lambda: losses.entropy_loss(np.zeros((3, 5), np.int32)),
                r"entropy_loss: logits_t must be a floating-point array, got dtype int32",
            ),
        ]
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
        # At trace time under jit, with the same message.
        with pytest.raises(ValueError, match=r"ppo_clip_loss: adv_t has shape \(4,\)"):
            jax.jit(losses.ppo_clip_loss)(x3, x3, x4, 0.2)

    # ---------------------------------------------------------------- gradients

    @parameterized.named_parameters(("mean", "mean"), ("sum", "sum"), ("none", "none"))
    def test_check_grads_float64(self, reduction):
        red = reduction
        total = (lambda x: jnp.sum(x)) if red == "none" else (lambda x: x)
        with jax.enable_x64(True):
            b = {
                k: np.asarray(v, np.float64) if v.dtype == np.float32 else v
                for k, v in batch(3).items()
            }
            m = b["mask"]
            fns = [
                (lambda x: losses.policy_gradient_loss(x, b["adv"], m, red), b["logp"]),
                (lambda x: losses.entropy_loss(x, m, red), b["logits"]),
                (lambda x: losses.value_loss(x, b["target"], m, "l2", red), b["v"]),
                (lambda x: losses.value_loss(x, b["target"], m, "huber", red), b["v"]),
                (lambda x: losses.value_loss(x, b["target"], m, "huber", red, 2.0), b["v"]),
                (
                    lambda x: losses.clipped_value_loss(x, b["old_v"], b["target"], 0.2, m, red),
                    b["v"],
                ),
                (
                    lambda x: losses.ppo_clip_loss(x, b["old_logp"], b["adv"], 0.2, m, red),
                    b["logp"],
                ),
                (lambda x: losses.huber(x, 1.5), b["target"] - b["v"]),
            ]
            for f, x in fns:
                assert jnp.asarray(f(x)).dtype == jnp.float64
                check_grads(lambda x, f=f: total(f(x)), (x,), order=1, modes=["rev"])
            # dpg_loss is not checked by finite differences on purpose: its value,
            # 0.5*|sg(a + dqda) - a|^2 = 0.5*|dqda|^2, does not move with a; only its
            # autodiff gradient (-dqda) is meaningful. test_dpg_gradient checks that.

    def test_targets_get_zero_gradient(self):
        b = batch(4)
        m = b["mask"]
        cases = [
            (lambda t: losses.policy_gradient_loss(b["logp"], t, m), b["adv"]),
            (lambda t: losses.value_loss(b["v"], t, m), b["target"]),
            (lambda t: losses.value_loss(b["v"], t, m, "huber"), b["target"]),
            (lambda t: losses.clipped_value_loss(b["v"], b["old_v"], t, 0.2, m), b["target"]),
            (lambda o: losses.clipped_value_loss(b["v"], o, b["target"], 0.2, m), b["old_v"]),
            (lambda o: losses.ppo_clip_loss(b["logp"], o, b["adv"], 0.2, m), b["old_logp"]),
            (lambda a: losses.ppo_clip_loss(b["logp"], b["old_logp"], a, 0.2, m), b["adv"]),
            (lambda d: losses.dpg_loss(b["a"], d), b["dqda"]),
        ]
        for f, x in cases:
            np.testing.assert_array_equal(jax.grad(f)(x), 0.0)
        # ...while the differentiable input does get a gradient.
        g = jax.grad(lambda v: losses.clipped_value_loss(v, b["old_v"], b["target"], 0.2, m))(
            b["v"]
        )
        assert np.abs(g).sum() > 0

    def test_analytic_gradients(self):
        b = batch(5)
        m = b["mask"].astype(np.float32)
        n = m.sum()
        # policy gradient, mean: d/dlogp = -adv * mask / n.
        g = jax.grad(lambda x: losses.policy_gradient_loss(x, b["adv"], m))(b["logp"])
        np.testing.assert_allclose(g, -b["adv"] * m / n, rtol=RTOL, atol=ATOL)
        # entropy, sum: d(-H)/dz_i = p_i (log p_i + H), per row, times the mask.
        g = jax.grad(lambda x: losses.entropy_loss(x, m, "sum"))(b["logits"])
        z = np.float64(b["logits"])
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        h = -(np.exp(logp) * logp).sum(-1, keepdims=True)
        np.testing.assert_allclose(g, np.exp(logp) * (logp + h) * m[:, None], rtol=1e-4, atol=ATOL)
        # value l2, mean: d/dv = (v - target) * mask / n; huber: -clip(target - v, -1, 1).
        g = jax.grad(lambda x: losses.value_loss(x, b["target"], m))(b["v"])
        np.testing.assert_allclose(g, (b["v"] - b["target"]) * m / n, rtol=RTOL, atol=ATOL)
        g = jax.grad(lambda x: losses.value_loss(x, b["target"], m, "huber", "sum"))(b["v"])
        np.testing.assert_allclose(g, -np.clip(b["target"] - b["v"], -1, 1) * m, rtol=RTOL)
        # ppo, hand case: only the unclipped branch carries gradient -ratio*adv.
        lr = np.log(np.array([1.5, 1.5, 0.5, 0.5], np.float32))
        adv = np.array([2.0, -2.0, 2.0, -2.0], np.float32)
        g = jax.grad(
            lambda x: losses.ppo_clip_loss(x, np.zeros(4, np.float32), adv, 0.2, None, "sum")
        )(lr)
        np.testing.assert_allclose(g, [0.0, 3.0, -1.0, 0.0], rtol=RTOL, atol=ATOL)
        # clipped value loss: a saturated clip carries no gradient; the unclipped branch v - G.
        g = jax.grad(
            lambda x: losses.clipped_value_loss(
                x, np.ones(2, np.float32), np.array([3.0, 1.0], np.float32), 0.2, None, "sum"
            )
        )(np.array([1.5, 1.5], np.float32))
        np.testing.assert_allclose(g, [0.0, 0.5], rtol=RTOL, atol=ATOL)

    def test_dpg_gradient(self):
        b = batch(6)
        a, dqda = b["a"], b["dqda"]
        nb = a.shape[0]
        g = jax.grad(lambda x: losses.dpg_loss(x, dqda))(a)
        np.testing.assert_allclose(g, -dqda / nb, rtol=RTOL, atol=ATOL)
        g = jax.grad(lambda x: losses.dpg_loss(x, dqda, reduction="sum"))(a)
        np.testing.assert_allclose(g, -dqda, rtol=RTOL, atol=ATOL)
        m = b["a_mask"].astype(np.float32)
        g = jax.grad(lambda x: losses.dpg_loss(x, dqda, m))(a)
        np.testing.assert_allclose(g, -dqda * m[:, None] / m.sum(), rtol=RTOL, atol=ATOL)

        # Through an actor: grad_W dpg_loss(mu_W(s), dQ/da) == -grad_W mean_s Q(s, mu_W(s)).
        rng = np.random.default_rng(7)
        s = rng.normal(size=(nb, 4)).astype(np.float32)
        w = rng.normal(size=(4, 3)).astype(np.float32)
        a_star = rng.normal(size=(nb, 3)).astype(np.float32)
        q = lambda s_, a_: -jnp.sum((a_ - a_star) ** 2, -1) + s_.sum(-1)
        actor = lambda w_: s @ w_
        dq = jax.grad(lambda a_: q(s, a_).sum())(actor(w))
        g_dpg = jax.grad(lambda w_: losses.dpg_loss(actor(w_), dq))(w)
        g_q = jax.grad(lambda w_: -q(s, actor(w_)).mean())(w)
        np.testing.assert_allclose(g_dpg, g_q, rtol=1e-4, atol=1e-5)

    def test_reinforce_two_armed_bandit(self):
        theta = jnp.array([0.3, -0.2])
        key_a, key_r = jax.random.split(jax.random.key(0))
        actions = jax.random.categorical(key_a, theta, shape=(256,))
        rewards = jnp.where(actions == 0, 1.0, 0.2) + 0.1 * jax.random.normal(key_r, (256,))
        assert 0 < int(actions.sum()) < 256  # both arms sampled

        def loss(th):
            logp = jax.nn.log_softmax(th)[actions]
            return losses.policy_gradient_loss(logp, rewards)

        grad = jax.grad(loss)(theta)
        onehot = jax.nn.one_hot(actions, 2)
        expected = -jnp.mean(rewards[:, None] * (onehot - jax.nn.softmax(theta)), axis=0)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
        # A gradient step raises the probability of the better arm.
        assert float(grad[0]) < 0 < float(grad[1])


def test_masked_out_non_finite_entries_do_not_leak():
    v = jnp.array([1.0, 2.0, jnp.nan])
    target = jnp.array([0.0, 0.0, 0.0])
    loss = losses.value_loss(v, target, mask=jnp.array([1, 1, 0]), reduction="sum")
    np.testing.assert_allclose(loss, 0.5 * (1.0 + 4.0))


# --------------------------------------------------------------------------------------------
# entropy_loss takes logits: distrax's entropy bit for bit, and the agents' results unchanged.
# --------------------------------------------------------------------------------------------


def _logit_cases():
    rng = np.random.default_rng(11)
    yield "random", (3.0 * rng.normal(size=(64, 6))).astype(np.float32)
    yield "batched", rng.normal(size=(5, 4, 3)).astype(np.float32)
    z = rng.normal(size=(8, 4)).astype(np.float32)
    z[0, 1] = -np.inf  # an impossible action
    z[1, :3] = -np.inf  # a sure action
    z[2, 2] = -1e30  # very negative, finite
    z[3, 0] = 80.0  # nearly sure, large logit
    yield "inf_and_very_negative", z


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
def test_entropy_is_distrax_categorical_entropy_bitwise(jit):
    distrax = pytest.importorskip("distrax")
    wrap = jax.jit if jit else (lambda f: f)

    # What the agents computed before (rljax 0.1.0's entropy_loss took dist.entropy()) and what
    # they compute now (they pass dist.logits), each jitted alone or run op by op.
    def before(z):
        return -distrax.Categorical(logits=z).entropy()

    def now(z):
        return losses.entropy_loss(distrax.Categorical(logits=z).logits, reduction="none")

    for name, z in _logit_cases():
        expected = np.asarray(wrap(before)(z))  # the per-step loss is -H
        per = np.asarray(wrap(now)(z))
        np.testing.assert_array_equal(per, expected, err_msg=name)
        assert np.all(np.isfinite(per)), name
        # Outside any jit: distrax's entropy of its stored (log_softmax-normalised) logits.
        dist = distrax.Categorical(logits=z)
        np.testing.assert_array_equal(
            losses.entropy_loss(dist.logits, reduction="none"), -np.asarray(dist.entropy())
        )
        # Raw logits are the same distribution: equal to float precision (distrax normalises
        # raw logits twice, so the last bit may differ), and to the float64 numpy entropy.
        raw = np.asarray(wrap(lambda x: losses.entropy_loss(x, reduction="none"))(z))
        np.testing.assert_allclose(raw, expected, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(raw, -np_entropy(z), rtol=1e-5, atol=1e-6, err_msg=name)


def test_entropy_loss_gradients_are_the_agents_old_gradients_bitwise():
    """A2C's loss before (``entropy_loss(dist.entropy())``) and after (``dist.logits``)."""
    distrax = pytest.importorskip("distrax")
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(16, 4, 5)).astype(np.float32)  # [T, N, obs]
    actions = rng.integers(0, 3, size=(16, 4))
    adv = rng.normal(size=(16, 4)).astype(np.float32)
    mask = rng.random((16, 4)) < 0.8
    w = rng.normal(size=(5, 3)).astype(np.float32)

    def old_entropy_loss(entropy_t, mask, reduction):  # rljax 0.1.0's entropy_loss
        return losses._reduce(-entropy_t, mask, reduction)

    def loss(w, new, ent_coef, red):
        dist = distrax.Categorical(logits=obs @ w)
        actor = losses.policy_gradient_loss(dist.log_prob(actions), adv, mask, red)
        if new:
            entropy = losses.entropy_loss(dist.logits, mask, red)
        else:
            entropy = old_entropy_loss(dist.entropy(), mask, red)
        return actor + ent_coef * entropy, entropy

    for red in ("mean", "sum"):
        for ent_coef in (0.0, 0.01, 0.5):
            f = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=(1, 3))
            (l_new, e_new), g_new = f(w, True, ent_coef, red)
            (l_old, e_old), g_old = f(w, False, ent_coef, red)
            np.testing.assert_array_equal(e_new, e_old)
            np.testing.assert_array_equal(l_new, l_old)
            np.testing.assert_array_equal(g_new, g_old)


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
def test_entropy_loss_vmap_over_batches(jit):
    b = batch(8)
    z = np.stack([b["logits"], 0.5 * b["logits"], b["logits"][::-1]])  # [3, B, A]
    m = np.stack([b["mask"]] * 3)
    fn = jax.vmap(losses.entropy_loss, in_axes=(0, 0, None))
    fn = jax.jit(fn, static_argnums=2) if jit else fn
    for red in REDUCTIONS:
        out = fn(z, m, red)
        for i in range(3):
            np.testing.assert_allclose(
                out[i], np_reduce(-np_entropy(z[i]), m[i], red), rtol=RTOL, atol=ATOL
            )


def test_losses_module_does_not_import_distrax():
    code = (
        "import sys, rljax.losses, rljax.returns; "
        "bad = [m for m in ('distrax', 'flax', 'optax', 'gymnax') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# Cross-check with rlax where the losses agree (docs/conventions.md, the rlax table).
# --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Rlax softmax will be deprecated")
def test_cross_check_rlax_losses():
    rlax = pytest.importorskip("rlax")
    b = batch(9)
    z, w = b["logits"], b["mask"].astype(np.float32)
    a = np.random.default_rng(9).integers(0, z.shape[-1], size=B)
    close = lambda x, y: np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)
    # entropy_loss: rlax's value is -mean_t(w_t H_t) over all T steps: ours unweighted, or
    # our weighted sum / T.
    ones = np.ones(B, np.float32)
    close(losses.entropy_loss(z), rlax.entropy_loss(z, ones))
    close(losses.entropy_loss(z, w, "sum") / B, rlax.entropy_loss(z, w))
    # policy_gradient_loss takes log pi(a_t) (rlax: logits_t and a_t); rlax weights like above.
    logp = jax.nn.log_softmax(z)[np.arange(B), a]
    close(
        losses.policy_gradient_loss(logp, b["adv"]),
        rlax.policy_gradient_loss(z, a, b["adv"], ones),
    )
    close(
        losses.policy_gradient_loss(logp, b["adv"], w, "sum") / B,
        rlax.policy_gradient_loss(z, a, b["adv"], w),
    )
    # ppo_clip_loss(logp, old_logp, adv, eps) == rlax.clipped_surrogate_pg_loss(ratio, adv, eps).
    ratio = np.exp(b["logp"] - b["old_logp"])
    close(
        losses.ppo_clip_loss(b["logp"], b["old_logp"], b["adv"], 0.2),
        rlax.clipped_surrogate_pg_loss(ratio, b["adv"], 0.2),
    )
    # dpg_loss on [B, A] with reduction="none" == rlax.dpg_loss (per action dim, on [A] rows)
    # summed over the action dims.
    close(
        losses.dpg_loss(b["a"], b["dqda"], reduction="none"),
        jax.vmap(rlax.dpg_loss)(b["a"], b["dqda"]).sum(-1),
    )
    # huber == rlax.huber_loss; value_loss(kind="l2", reduction="none") == rlax.l2_loss.
    x = b["target"] - b["v"]
    close(losses.huber(x, 1.5), rlax.huber_loss(x, 1.5))
    close(
        losses.value_loss(b["v"], b["target"], reduction="none"), rlax.l2_loss(b["v"], b["target"])
    )
