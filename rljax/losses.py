"""Actor and critic losses. Each takes per-step arrays and reduces them.

Every loss takes an optional ``mask`` (same shape, bool or 0/1) and a ``reduction``:
``"mean"`` averages over the unmasked entries, ``"sum"`` adds them up, ``"none"`` returns the
masked per-entry losses. Targets and advantages carry no gradient.
"""

from __future__ import annotations

from typing import Literal

import chex
import jax
import jax.numpy as jnp

from rljax.types import Array

Reduction = Literal["mean", "sum", "none"]


def _reduce(x: Array, mask: Array | None, reduction: Reduction) -> Array:
    m = jnp.ones_like(x) if mask is None else jnp.asarray(mask).astype(x.dtype)
    chex.assert_equal_shape([x, m])
    x = jnp.where(m > 0, x * m, 0.0)  # masked-out entries never leak, even if non-finite
    if reduction == "mean":
        return x.sum() / jnp.maximum(m.sum(), 1.0)
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def policy_gradient_loss(
    logp_t: Array, adv_t: Array, mask: Array | None = None, reduction: Reduction = "mean"
) -> Array:
    """Policy-gradient (REINFORCE / actor-critic) loss  L = −Σₜ log π(aₜ|sₜ)·sg(Aₜ).

    Reference: Williams (1992), "Simple statistical gradient-following algorithms for
    connectionist reinforcement learning".

    Args:
      logp_t: log-probabilities of the actions taken, [T] (any shape).
      adv_t: advantages (or returns), same shape; the gradient is stopped.
      mask: which entries count, same shape, or None.
      reduction: "mean" over unmasked entries, "sum", or "none".
    """
    chex.assert_type([logp_t, adv_t], float)
    chex.assert_equal_shape([logp_t, adv_t])
    return _reduce(-logp_t * jax.lax.stop_gradient(adv_t), mask, reduction)


def entropy_loss(
    entropy_t: Array, mask: Array | None = None, reduction: Reduction = "mean"
) -> Array:
    """Entropy regulariser  L = −Σₜ H(π(·|sₜ)); minimising it raises the entropy.

    Reference: Williams & Peng (1991), "Function optimization using connectionist
    reinforcement learning algorithms"; Mnih et al. (2016), https://arxiv.org/abs/1602.01783.

    Args:
      entropy_t: policy entropies, [T] (any shape).
      mask: which entries count, same shape, or None.
      reduction: "mean" over unmasked entries, "sum", or "none".
    """
    chex.assert_type(entropy_t, float)
    return _reduce(-entropy_t, mask, reduction)


def huber(x: Array, delta: float = 1.0) -> Array:
    """Huber function: ½x² for |x| ≤ δ, else δ·(|x| − ½δ)."""
    abs_x = jnp.abs(x)
    quad = jnp.minimum(abs_x, delta)
    return 0.5 * quad**2 + delta * (abs_x - quad)


def value_loss(
    v_tm1: Array,
    target_tm1: Array,
    mask: Array | None = None,
    kind: Literal["l2", "huber"] = "l2",
    reduction: Reduction = "mean",
    huber_delta: float = 1.0,
) -> Array:
    """Critic regression loss on e = sg(target) − v.

    ``kind="l2"``: ½e² (so the mean-squared error is twice this). ``kind="huber"``: Huber(e, δ),
    as Keras' ``Huber`` loss. The target carries no gradient.

    Args:
      v_tm1: predicted values, [T] (any shape).
      target_tm1: regression targets, same shape; the gradient is stopped.
      mask: which entries count, same shape, or None.
      kind: "l2" or "huber".
      reduction: "mean" over unmasked entries, "sum", or "none".
      huber_delta: δ of the Huber function.
    """
    chex.assert_type([v_tm1, target_tm1], float)
    chex.assert_equal_shape([v_tm1, target_tm1])
    err = jax.lax.stop_gradient(target_tm1) - v_tm1
    if kind == "l2":
        per = 0.5 * jnp.square(err)
    elif kind == "huber":
        per = huber(err, huber_delta)
    else:
        raise ValueError(f"kind must be 'l2' or 'huber', got {kind!r}")
    return _reduce(per, mask, reduction)


def clipped_value_loss(
    v_tm1: Array,
    old_v_tm1: Array,
    target_tm1: Array,
    epsilon: float,
    mask: Array | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """PPO's clipped value loss  ½·max((v − G)², (v_old + clip(v − v_old, ±ε) − G)²).

    Reference: Schulman et al. (2017), https://arxiv.org/abs/1707.06347 (as implemented in the
    OpenAI baselines PPO2 code).

    Args:
      v_tm1: predicted values, [T]; old_v_tm1: values at collection time (no gradient);
      target_tm1: returns (no gradient); epsilon: clip range; mask, reduction: as above.
    """
    chex.assert_type([v_tm1, old_v_tm1, target_tm1], float)
    chex.assert_equal_shape([v_tm1, old_v_tm1, target_tm1])
    target = jax.lax.stop_gradient(target_tm1)
    old = jax.lax.stop_gradient(old_v_tm1)
    clipped = old + jnp.clip(v_tm1 - old, -epsilon, epsilon)
    per = 0.5 * jnp.maximum(jnp.square(v_tm1 - target), jnp.square(clipped - target))
    return _reduce(per, mask, reduction)


def ppo_clip_loss(
    logp_t: Array,
    old_logp_t: Array,
    adv_t: Array,
    epsilon: float,
    mask: Array | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """PPO clipped surrogate  L = −min(ρₜ·Aₜ, clip(ρₜ, 1 − ε, 1 + ε)·Aₜ), ρₜ = π/π_old.

    Reference: Schulman et al. (2017), "Proximal Policy Optimization Algorithms",
    https://arxiv.org/abs/1707.06347.

    Args:
      logp_t: log π(aₜ|sₜ) under the current policy, [T].
      old_logp_t: log-probabilities at collection time (no gradient), [T].
      adv_t: advantages (no gradient), [T].
      epsilon: clip range ε.
      mask, reduction: as above.
    """
    chex.assert_type([logp_t, old_logp_t, adv_t], float)
    chex.assert_equal_shape([logp_t, old_logp_t, adv_t])
    adv = jax.lax.stop_gradient(adv_t)
    ratio = jnp.exp(logp_t - jax.lax.stop_gradient(old_logp_t))
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon) * adv)
    return _reduce(-surrogate, mask, reduction)


def dpg_loss(
    a_t: Array, dqda_t: Array, mask: Array | None = None, reduction: Reduction = "mean"
) -> Array:
    """Deterministic policy gradient loss  L = ½‖sg(aₜ + ∂Q/∂a) − aₜ‖², summed over action dims.

    Its gradient with respect to aₜ is −∂Q(sₜ, a)/∂a at a = aₜ = μ(sₜ), so descending it ascends
    Q along the actor, without differentiating the critic's parameters.

    Reference: Silver et al. (2014), "Deterministic Policy Gradient Algorithms"; Lillicrap et al.
    (2016), https://arxiv.org/abs/1509.02971.

    Args:
      a_t: actions from the actor, [B, A].
      dqda_t: ∂Q/∂a at those actions, [B, A] (no gradient).
      mask: [B] or None; reduction: over the batch.
    """
    chex.assert_rank([a_t, dqda_t], 2)
    chex.assert_type([a_t, dqda_t], float)
    chex.assert_equal_shape([a_t, dqda_t])
    target = jax.lax.stop_gradient(a_t + dqda_t)
    per = 0.5 * jnp.sum(jnp.square(target - a_t), axis=-1)
    return _reduce(per, mask, reduction)
