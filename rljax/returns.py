"""Returns, λ-returns, generalised advantages and TD errors over time-major arrays.

Conventions (docs/conventions.md). Every array has a leading time axis:
shape [T], or [T, ...] for several independent streams at once (the scan runs over axis 0 and
is elementwise over the trailing axes, so a [T, N] call equals ``jax.vmap`` of the [T] call
over axis 1, bit for bit):

* ``r_t``: reward of step t.
* ``discount_t``: ``gamma * (1 - terminated_t)``; only termination zeroes the bootstrap.
* ``v_t``: value of the state after step t; at an episode end, of the final observation.
* ``v_tm1``: value of the state in which step t was taken.
* ``done_t``: the episode ended at step t (terminated or truncated); it cuts the recursion.
* ``lambda_``: a scalar, or an array of ``r_t``'s shape (per step and stream).

Targets are returned with gradients stopped unless ``stop_target_gradients=False`` (rlax's
return functions default to ``False``). A wrong call raises ``ValueError`` at trace time,
naming the argument and its shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import _checks
from rljax.types import Array


def _as_float(x: Array, like: Array) -> Array:
    return jnp.asarray(x).astype(like.dtype)


def lambda_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    done_t: Array,
    lambda_: Array | float = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """λ-returns with episode boundaries inside the stream; targets' gradients stopped by default.

    Gₜ = rₜ + discountₜ·((1 − λₜ)·vₜ + λₜ·Gₜ₊₁), with λₜ = 0 where doneₜ and at the last
    step, so an episode end (and the stream's cut) bootstraps from vₜ alone.

    Reference: Sutton & Barto (2018), "Reinforcement Learning: An Introduction", ch. 12.1.

    Args:
      r_t: rewards, [T, ...].
      discount_t: γ·(1 − terminated), [T, ...].
      v_t: values of the successor states (final observation at episode ends), [T, ...].
      done_t: episode ended at step t (bool or 0/1 float), [T, ...].
      lambda_: mixing parameter, a scalar or [T, ...] (``r_t``'s shape).
      stop_target_gradients: stop gradients through the returned targets (default True).

    Returns:
      λ-returns, [T, ...] (``r_t``'s shape).

    Raises:
      ValueError: at trace time, naming the argument, if a shape or dtype is wrong.
    """
    return _lambda_returns(
        "lambda_returns", r_t, discount_t, v_t, done_t, lambda_, stop_target_gradients
    )


def _lambda_returns(
    fn: str,
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    done_t: Array,
    lambda_: Array | float,
    stop_target_gradients: bool,
) -> Array:
    """:func:`lambda_returns`, its argument errors naming ``fn`` (the public function called)."""
    _checks.series(fn, done_t=done_t, r_t=r_t, discount_t=discount_t, v_t=v_t)
    _checks.scalar_or_shape(fn, "lambda_", lambda_, "r_t", r_t)
    dtype = jnp.result_type(r_t, discount_t, v_t)
    r_t, discount_t, v_t = (x.astype(dtype) for x in (r_t, discount_t, v_t))
    lambda_ = jnp.ones_like(r_t) * _as_float(lambda_, r_t)
    not_done = 1.0 - _as_float(done_t, r_t)
    lambda_ = lambda_ * not_done
    lambda_ = lambda_.at[-1].set(0.0)

    def _body(acc, xs):
        r, discount, v, lam = xs
        acc = r + discount * ((1.0 - lam) * v + lam * acc)
        return acc, acc

    _, returns = jax.lax.scan(
        _body, jnp.zeros_like(r_t[-1]), (r_t, discount_t, v_t, lambda_), reverse=True
    )
    return jax.lax.stop_gradient(returns) if stop_target_gradients else returns


def discounted_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    done_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """Discounted returns with episode boundaries inside the stream; gradients stopped by default.

    Gₜ = rₜ + discountₜ·(Gₜ₊₁ if not doneₜ else vₜ); the last step bootstraps from vₜ.
    This is :func:`lambda_returns` at λ = 1.

    Args:
      r_t: rewards, [T, ...].
      discount_t: γ·(1 − terminated), [T, ...].
      v_t: values of the successor states (final observation at episode ends), [T, ...].
      done_t: episode ended at step t (bool or 0/1 float), [T, ...].
      stop_target_gradients: stop gradients through the returned targets (default True).

    Returns:
      discounted returns, [T, ...] (``r_t``'s shape).

    Raises:
      ValueError: at trace time, naming the argument, if a shape or dtype is wrong.
    """
    return _lambda_returns(
        "discounted_returns", r_t, discount_t, v_t, done_t, 1.0, stop_target_gradients
    )


def gae_advantages(
    r_t: Array,
    discount_t: Array,
    v_tm1: Array,
    v_t: Array,
    done_t: Array,
    lambda_: Array | float,
    stop_target_gradients: bool = True,
) -> Array:
    """Generalised advantage estimates, truncation-correct; gradients stopped by default.

    Aₜ = Gₜ^λ − v_tm1ₜ, with Gₜ^λ from :func:`lambda_returns`. Equivalently
    Aₜ = δₜ + discountₜ·λₜ·Aₜ₊₁ with δₜ = rₜ + discountₜ·vₜ − v_tm1ₜ and λₜ = 0 at episode
    ends, so a truncated episode bootstraps from the value of its final observation.

    Reference: Schulman et al. (2016), "High-Dimensional Continuous Control Using Generalized
    Advantage Estimation", https://arxiv.org/abs/1506.02438.

    Args:
      r_t: rewards, [T, ...].
      discount_t: γ·(1 − terminated), [T, ...].
      v_tm1: values of the states where each step was taken, [T, ...].
      v_t: values of the successor states (final observation at episode ends), [T, ...].
      done_t: episode ended at step t (bool or 0/1 float), [T, ...].
      lambda_: a scalar or [T, ...] (``r_t``'s shape).
      stop_target_gradients: stop gradients through the advantages (default True).

    Returns:
      advantages, [T, ...] (``r_t``'s shape).

    Raises:
      ValueError: at trace time, naming the argument, if a shape or dtype is wrong.
    """
    fn = "gae_advantages"
    _checks.series(fn, done_t=done_t, r_t=r_t, discount_t=discount_t, v_tm1=v_tm1, v_t=v_t)
    returns = _lambda_returns(
        fn, r_t, discount_t, v_t, done_t, lambda_, stop_target_gradients=False
    )
    adv = returns - v_tm1
    return jax.lax.stop_gradient(adv) if stop_target_gradients else adv


def td_errors(
    r_t: Array,
    discount_t: Array,
    v_tm1: Array,
    v_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """One-step TD errors δₜ = rₜ + discountₜ·vₜ − v_tm1ₜ; the target's gradient stopped by default.

    With ``stop_target_gradients`` the target rₜ + discountₜ·vₜ carries no gradient (the
    gradient still flows into v_tm1).

    Reference: Sutton (1988), "Learning to predict by the methods of temporal differences".

    Args:
      r_t: rewards, [T, ...].
      discount_t: γ·(1 − terminated), [T, ...].
      v_tm1: values of the states where each step was taken, [T, ...].
      v_t: values of the successor states (final observation at episode ends), [T, ...].
      stop_target_gradients: stop gradients through the target (default True).

    Returns:
      TD errors, [T, ...] (``r_t``'s shape).

    Raises:
      ValueError: at trace time, naming the argument, if a shape or dtype is wrong.
    """
    fn = "td_errors"
    _checks.series(fn, r_t=r_t, discount_t=discount_t, v_tm1=v_tm1, v_t=v_t)
    target = r_t + discount_t * v_t
    if stop_target_gradients:
        target = jax.lax.stop_gradient(target)
    return target - v_tm1


# standardize: a spread below this fraction of the largest magnitude counts as constant.
CONSTANT_RTOL = 1e-5


def standardize(x: Array, mask: Array | None = None, eps: float = 1e-8) -> Array:
    """(x − mean) / (std + eps) over the entries where ``mask`` is true (all if None).

    Masked-out entries are returned as 0. Works on any shape; statistics are over all entries.
    A (near-)constant input, whose standard deviation is at most ``CONSTANT_RTOL`` times its
    largest magnitude (below that the spread is float rounding, not signal), standardises to
    zeros rather than to amplified rounding noise.

    Args:
      x: values, any shape.
      mask: bool or 0/1 float of the same shape, or None.
      eps: added to the standard deviation.

    Returns:
      standardised values, same shape as ``x``.

    Raises:
      ValueError: at trace time, naming the argument, if a shape or dtype is wrong.
    """
    _checks.floating("standardize", x=x)
    _checks.same_shape("standardize", x=x, mask=mask)
    if mask is None:
        mask = jnp.ones_like(x)
    m = jnp.asarray(mask).astype(bool)
    x = jnp.where(m, x, 0.0)  # masked-out entries never leak, even if non-finite
    n = jnp.maximum(m.sum(), 1).astype(x.dtype)
    mean = x.sum() / n
    var = jnp.where(m, jnp.square(x - mean), 0.0).sum() / n
    std = jnp.sqrt(var)
    signal = std > CONSTANT_RTOL * jnp.abs(x).max()
    return jnp.where(m & signal, (x - mean) / (std + eps), 0.0)
