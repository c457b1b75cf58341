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
      v_tm1: predicted values, [T] (any shape).
      old_v_tm1: values at collection time (no gradient), same shape.
      target_tm1: returns (no gradient), same shape.
      epsilon: clip range ε.
      mask: which entries count, same shape, or None.
      reduction: "mean" over unmasked entries, "sum", or "none".

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
      mask: which entries count, [T], or None.
      reduction: "mean" over unmasked entries, "sum", or "none".

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
      mask: which rows count, [B], or None.
      reduction: over the batch: "mean" over unmasked rows, "sum", or "none".

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


# ---- soft actor-critic (Haarnoja et al. 2018, https://arxiv.org/abs/1801.01290 and
# https://arxiv.org/abs/1812.05905; discrete actions: Christodoulou 2019,
# https://arxiv.org/abs/1910.07207). Critic values carry a leading ensemble axis [K, ...]; the
# minimum over it is the clipped double-Q estimate (Fujimoto et al. 2018).


def _check_critics(fn: str, name: str, q: Array, batch_shape: tuple[int, ...]) -> None:
    shape = tuple(jnp.shape(q))
    if len(shape) != 1 + len(batch_shape) or shape[1:] != tuple(batch_shape) or shape[0] < 1:
        raise ValueError(
            f"{fn}: {name} must have shape [K, *{tuple(batch_shape)}] with K >= 1 critics, "
            f"got {shape}"
        )


def soft_q_target(
    r_t: Array, discount_t: Array, q_next_t: Array, logp_next_t: Array, alpha: Array | float
) -> Array:
    """SAC's critic target  y = r + discount·(min_k Q'_k(s', a') − α·log π(a'|s')).

    a' ~ π(·|s') is sampled from the current policy; Q'_k are the target critics. The whole
    target is gradient-stopped (no gradient into the target critics, the policy or α).

    Args:
      r_t: rewards, [B].
      discount_t: γ·(1 − terminated), [B] (a truncation still bootstraps).
      q_next_t: target-critic values of (s', a') [K, B].
      logp_next_t: log π(a'|s') [B].
      alpha: the temperature α, a scalar.

    Returns:
      y [B].
    """
    fn = "soft_q_target"
    _checks.per_step(fn, r_t=r_t, discount_t=discount_t, logp_next_t=logp_next_t)
    _check_critics(fn, "q_next_t", q_next_t, jnp.shape(r_t))
    soft_v = jnp.min(q_next_t, axis=0) - alpha * logp_next_t
    return jax.lax.stop_gradient(r_t + discount_t * soft_v)


def soft_q_target_discrete(
    r_t: Array, discount_t: Array, q_next_t: Array, logits_next_t: Array, alpha: Array | float
) -> Array:
    """Discrete SAC's critic target, the expectation over a' taken exactly:
    y = r + discount·Σ_a' π(a'|s')·(min_k Q'_k(s', a') − α·log π(a'|s')).

    Args:
      r_t: rewards, [B].
      discount_t: γ·(1 − terminated), [B].
      q_next_t: target-critic values, [K, B, A].
      logits_next_t: the policy's logits at s', [B, A].
      alpha: the temperature α, a scalar.

    Returns:
      y [B], gradient-stopped.
    """
    fn = "soft_q_target_discrete"
    _checks.per_step(fn, r_t=r_t, discount_t=discount_t)
    _checks.rank(fn, "logits_next_t", logits_next_t, jnp.ndim(r_t) + 1, "[B, A]")
    _check_critics(fn, "q_next_t", q_next_t, jnp.shape(logits_next_t))
    logp = jax.nn.log_softmax(logits_next_t)
    soft_v = jnp.sum(jnp.exp(logp) * (jnp.min(q_next_t, axis=0) - alpha * logp), axis=-1)
    return jax.lax.stop_gradient(r_t + discount_t * soft_v)


def sac_actor_loss(
    logp_t: Array,
    q_t: Array,
    alpha: Array | float,
    mask: Array | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """SAC's actor loss  L = sg(α)·log π(a|s) − min_k Q_k(s, a),  a = f(ε; s) reparameterised.

    The gradient reaches the policy through both terms (``logp_t`` and ``q_t`` are functions
    of the reparameterised action); the caller keeps the critics' parameters fixed (take the
    gradient with respect to the actor's parameters only). α carries no gradient.

    Args:
      logp_t: log π(a|s) of the sampled actions, [B].
      q_t: critic values of (s, a), [K, B].
      alpha: the temperature, a scalar.
      mask: which rows count, [B], or None.
      reduction: over the batch: "mean" over unmasked rows, "sum", or "none".

    Returns:
      the loss: a scalar, or [B] for ``reduction="none"``.
    """
    fn = "sac_actor_loss"
    _checks.per_step(fn, mask, logp_t=logp_t)
    _check_critics(fn, "q_t", q_t, jnp.shape(logp_t))
    _check_reduction(fn, reduction)
    per = jax.lax.stop_gradient(alpha) * logp_t - jnp.min(q_t, axis=0)
    return _reduce(per, mask, reduction)


def sac_actor_loss_discrete(
    logits_t: Array,
    q_t: Array,
    alpha: Array | float,
    mask: Array | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Discrete SAC's actor loss, exact over actions:
    L = Σ_a π(a|s)·(sg(α)·log π(a|s) − sg(min_k Q_k(s, a))).

    Args:
      logits_t: the policy's logits, [B, A].
      q_t: critic values, [K, B, A] (no gradient).
      alpha: the temperature, a scalar.
      mask: which rows count, [B], or None.
      reduction: over the batch: "mean" over unmasked rows, "sum", or "none".

    Returns:
      the loss: a scalar, or [B] for ``reduction="none"``.
    """
    fn = "sac_actor_loss_discrete"
    _checks.rank(fn, "logits_t", logits_t, 2, "[B, A]")
    _checks.floating(fn, logits_t=logits_t)
    _checks.shape_is(fn, "mask", mask, jnp.shape(logits_t)[:1], "logits_t's batch shape")
    _check_critics(fn, "q_t", q_t, jnp.shape(logits_t))
    _check_reduction(fn, reduction)
    logp = jax.nn.log_softmax(logits_t)
    q = jax.lax.stop_gradient(jnp.min(q_t, axis=0))
    per = jnp.sum(jnp.exp(logp) * (jax.lax.stop_gradient(alpha) * logp - q), axis=-1)
    return _reduce(per, mask, reduction)


def temperature_loss(
    log_alpha: Array,
    logp_t: Array,
    target_entropy: Array | float,
    mask: Array | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """SAC's temperature loss  L(α) = −log α · sg(log π(a|s) + H̄).

    Descending it raises α when the policy's entropy −log π falls below the target H̄ and
    lowers it above. For discrete actions pass the exact expectation Σ_a π(a|s)·log π(a|s)
    (minus the entropy) as ``logp_t``.

    Args:
      log_alpha: log α, a scalar (the parameter).
      logp_t: log π(a|s) of the sampled actions, [B] (no gradient).
      target_entropy: H̄, a scalar.
      mask: which rows count, [B], or None.
      reduction: over the batch: "mean" over unmasked rows, "sum", or "none".

    Returns:
      the loss: a scalar, or [B] for ``reduction="none"``.
    """
    fn = "temperature_loss"
    _checks.rank(fn, "log_alpha", log_alpha, 0, "a scalar")
    _checks.per_step(fn, mask, logp_t=logp_t)
    _check_reduction(fn, reduction)
    per = -log_alpha * jax.lax.stop_gradient(logp_t + target_entropy)
    return _reduce(per, mask, reduction)
