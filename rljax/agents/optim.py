"""Optimisation pieces every agent shares: Adam with clipping and decay, one optimiser step,
minibatch epochs, Polyak target updates."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax.types import Array, PRNGKey


def adam(
    lr: Array | float,
    max_grad_norm: Array | float,
    eps: Array | float = 1e-8,
    anneal_steps: int | None = None,
) -> optax.GradientTransformation:
    """Adam with optional global-norm clipping (``max_grad_norm`` <= 0 turns it off).

    With ``anneal_steps`` the learning rate decays linearly from ``lr`` to 0 over that many
    optimiser steps.
    """
    clip = optax.clip_by_global_norm(jnp.where(max_grad_norm > 0, max_grad_norm, jnp.inf))
    if anneal_steps is not None:
        lr = optax.linear_schedule(lr, 0.0, anneal_steps)
    return optax.chain(clip, optax.adam(lr, eps=eps))


def optimizer_steps(
    optimizers: dict[str, optax.GradientTransformation], grads: dict, opt_state: dict, params: dict
) -> tuple[dict, dict]:
    """:func:`optimizer_step` of each named network with its own optimiser:
    ``({name: params}, {name: opt_state})``."""
    new = {k: optimizer_step(optimizers[k], grads[k], opt_state[k], params[k]) for k in params}
    return {k: p for k, (p, _) in new.items()}, {k: o for k, (_, o) in new.items()}


def optimizer_step(
    optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    """One optimiser step: ``(new_params, new_opt_state)``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def descend(optimizer: optax.GradientTransformation, loss_fn: Callable, params, opt_state, *args,
            has_aux: bool = True):  # fmt: skip
    """One optimiser step down ``loss_fn(params, *args)`` (returning ``(loss, aux)``, or the
    loss alone with ``has_aux=False``): ``(params, opt_state, loss, aux)``."""
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, *args)
    loss, aux = value if has_aux else (value, None)
    params, opt_state = optimizer_step(optimizer, grads, opt_state, params)
    return params, opt_state, loss, aux


def permutation(key: PRNGKey, n: int) -> Array:
    """A uniformly random permutation of ``range(n)``, int32 [n].

    The algorithm of ``jax.random.permutation``: sort by fresh random keys, in as many rounds
    as make a tie between any two keys negligible (JAX's rule: rounds x key bits >= 3·log2 n;
    a tie keeps index order). Each round here sorts one uint32 array, the random key in the
    high bits and the index in the low ``ceil(log2 n)`` bits, where JAX sorts (key, index)
    pairs: XLA:CPU sorts one array 3-4x faster than pairs (PPO's 5 epochs of 500 samples over
    64 seeds: 13 against 35 ms). The keys have fewer bits, so there are more rounds where JAX
    needs one (two for n = 500); the draws differ from ``jax.random.permutation``'s.
    """
    index_bits = max(1, (n - 1).bit_length())
    key_bits = 32 - index_bits
    if key_bits < 8:  # n > 2^24: too few key bits per round; JAX's pair sort
        return jax.random.permutation(key, n).astype(jnp.int32)
    rounds = max(1, math.ceil(3 * math.log2(max(n, 1)) / key_bits))
    mask = np.uint32((1 << index_bits) - 1)
    index = jax.lax.iota(jnp.uint32, n)
    perm = None
    for _ in range(rounds):
        key, sub = jax.random.split(key)
        bits = jax.random.bits(sub, (n,), jnp.uint32)
        order = (jax.lax.sort((bits & ~mask) | index) & mask).astype(jnp.int32)
        perm = order if perm is None else perm[order]
    return perm


def minibatch_indices(
    key: PRNGKey, num_epochs: int, batch_size: int, num_minibatches: int
) -> Array:
    """One fresh permutation of ``range(batch_size)`` per epoch (:func:`permutation`), split:
    [E, M, B/M] int32."""
    perms = jax.vmap(permutation, (0, None))(jax.random.split(key, num_epochs), batch_size)
    return perms.reshape(num_epochs, num_minibatches, batch_size // num_minibatches)


def minibatch_epochs(
    key: PRNGKey, step: Callable, carry: Any, batch: Any, num_epochs: int, num_minibatches: int
) -> tuple[Any, Any]:
    """``num_epochs`` passes of ``step(carry, minibatch) -> (carry, info)`` over ``batch``
    (leaves with leading axis [B]), each in a fresh random order split into
    ``num_minibatches`` minibatches: ``(carry, info[E, M])``.

    One gather per epoch puts the batch in that epoch's order, split [M, B/M]; the inner scan
    then slices minibatches off it (cheaper than a gather per minibatch under ``vmap``).
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    idx = minibatch_indices(key, num_epochs, size, num_minibatches)

    def epoch(carry, epoch_idx):
        flat = epoch_idx.reshape(-1)
        split = jax.tree.map(lambda x: x[flat].reshape(*epoch_idx.shape, *x.shape[1:]), batch)
        return jax.lax.scan(step, carry, split)

    return jax.lax.scan(epoch, carry, idx)


def soft_update(online: Any, target: Any, tau: Array | float) -> Any:
    """Polyak averaging of ONE network's target: ``tau·online + (1 − tau)·target``.

    Called once per (online, target) pair; the two trees must have the same structure.
    """
    chex.assert_trees_all_equal_shapes_and_dtypes(online, target)
    return optax.incremental_update(new_tensors=online, old_tensors=target, step_size=tau)
