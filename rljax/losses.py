"""Actor and critic losses. Each takes per-step arrays and reduces them.

Every loss takes an optional ``mask`` (``entropy_loss``: ``w_t``) of the per-entry losses'
shape, bool or 0/1 float (float weights are allowed), and a ``reduction``: ``"mean"`` is
Σ mask·loss / max(Σ mask, 1) (the mean over the unmasked entries), ``"sum"`` is Σ mask·loss,
``"none"`` returns the masked per-entry losses. Targets and advantages carry no gradient.
A wrong call raises ``ValueError`` at trace time, naming the argument and its shape.

This module needs jax and numpy only (no distrax): :func:`entropy_loss` computes the
categorical entropy itself, with the same operations as ``distrax.Categorical.entropy``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from rljax import _checks
from rljax.types import Array

Reduction = Literal["mean", "sum", "none"]


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(x: Array, mask: Array | None, reduction: Reduction) -> Array:
    """Masked mean / sum / none; the callers have checked the mask's shape and ``reduction``."""
    m = jnp.ones_like(x) if mask is None else jnp.asarray(mask).astype(x.dtype)
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

    Returns:
      the loss: a scalar, or ``logp_t``'s shape for ``reduction="none"``.
    """
    fn = "policy_gradient_loss"
    _checks.per_step(fn, mask, logp_t=logp_t, adv_t=adv_t)
    _check_reduction(fn, reduction)
    return _reduce(-logp_t * jax.lax.stop_gradient(adv_t), mask, reduction)


def _categorical_entropy(logits_t: Array) -> Array:
    """Entropy H = −Σₐ πₐ·log πₐ of π = softmax(logits_t) over the last axis.

    The operations of ``distrax.Categorical.entropy``: log π = log_softmax(logits_t), and a
    zero-probability action (a −inf logit) adds 0, not NaN. distrax applies them to its stored
    ``dist.logits``, which are already log_softmax-normalised, so given ``dist.logits`` this is
    bitwise equal to ``dist.entropy()``; given the raw logits it can differ in the last bit
    (distrax then normalises twice).

    Args:
      logits_t: unnormalised action preferences, [..., A].

    Returns:
      entropies, [...] (``logits_t``'s shape without the last axis).
    """
    log_probs = jax.nn.log_softmax(logits_t)
    probs = jnp.exp(log_probs)
    return -jnp.sum(jnp.where(probs == 0, 0.0, log_probs) * probs, axis=-1)


def entropy_loss(logits_t: Array, w_t: Array | None = None, reduction: Reduction = "mean") -> Array:
    """Entropy regulariser  L = −Σₜ wₜ·H(softmax(logits_t)) / max(Σₜ wₜ, 1) (``"mean"``).

    Minimising it raises the policy's entropy. H is the categorical entropy over the last axis,
    computed as ``distrax.Categorical.entropy`` computes it: pass ``dist.logits`` of a
    ``distrax.Categorical`` to get ``dist.entropy()`` bit for bit (and a gradient that shares the
    distribution's normalisation). Takes logits, as ``rlax.entropy_loss`` does; rlax's mean is
    Σ w·H / T over all steps, this one Σ w·H / max(Σ w, 1) over the weighted ones (they agree
    when ``w_t`` is None or all ones; ``reduction="sum"`` divided by T is rlax's value).

    Reference: Williams & Peng (1991), "Function optimization using connectionist
    reinforcement learning algorithms"; Mnih et al. (2016), https://arxiv.org/abs/1602.01783.

    Args:
      logits_t: unnormalised action preferences, [T, A] (any leading shape [..., A]).
      w_t: per-step weights or mask (bool or float), [T] (``logits_t``'s shape without the
        last axis), or None for all ones.
      reduction: "mean" over the weighted entries, "sum", or "none" (per-step −wₜ·Hₜ, [T]).

    Returns:
      the loss: a scalar, or [T] for ``reduction="none"``.
    """
    fn = "entropy_loss"
    _checks.rank_at_least(fn, "logits_t", logits_t, 1, "[..., num_actions]")
    _checks.floating(fn, logits_t=logits_t)
    _checks.shape_is(
        fn, "w_t", w_t, jnp.shape(logits_t)[:-1], "logits_t's shape without the last axis"
    )
    _check_reduction(fn, reduction)
    return _reduce(-_categorical_entropy(logits_t), w_t, reduction)


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

    Returns:
      the loss: a scalar, or ``v_tm1``'s shape for ``reduction="none"``.
    """
    fn = "value_loss"
    _checks.per_step(fn, mask, v_tm1=v_tm1, target_tm1=target_tm1)
    _check_reduction(fn, reduction)
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

    Returns:
      the loss: a scalar, or ``v_tm1``'s shape for ``reduction="none"``.
    """
    fn = "clipped_value_loss"
    _checks.per_step(fn, mask, v_tm1=v_tm1, old_v_tm1=old_v_tm1, target_tm1=target_tm1)
    _check_reduction(fn, reduction)
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

    Returns:
      the loss: a scalar, or ``logp_t``'s shape for ``reduction="none"``.
    """
    fn = "ppo_clip_loss"
    _checks.per_step(fn, mask, logp_t=logp_t, old_logp_t=old_logp_t, adv_t=adv_t)
    _check_reduction(fn, reduction)
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

    Returns:
      the loss: a scalar, or [B] for ``reduction="none"``.
    """
    fn = "dpg_loss"
    _checks.rank(fn, "a_t", a_t, 2, "[B, A]")
    _checks.same_shape(fn, a_t=a_t, dqda_t=dqda_t)
    _checks.floating(fn, a_t=a_t, dqda_t=dqda_t)
    _checks.shape_is(fn, "mask", mask, jnp.shape(a_t)[:1], "a_t's batch shape")
    _check_reduction(fn, reduction)
    target = jax.lax.stop_gradient(a_t + dqda_t)
    per = 0.5 * jnp.sum(jnp.square(target - a_t), axis=-1)
    return _reduce(per, mask, reduction)
