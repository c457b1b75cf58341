"""A functional, fixed-capacity replay buffer: ``(init, add, sample)`` pure functions.

Shaped like an optax transformation: ``replay_buffer(capacity=..., batch_size=...)`` returns a
``ReplayBuffer`` NamedTuple of three pure functions, and all state lives in a ``ReplayState``
pytree that the caller passes in and gets back. Nothing is mutated, so every function can be
jitted, used inside ``lax.scan``, and vmapped across seeds (a batch of ``ReplayState``s with a
leading seed axis)::

    buffer = replay_buffer(capacity=100_000, batch_size=256)
    state = buffer.init(example)                  # example: ONE item, e.g. a Transition
    state = buffer.add(state, items)              # items: [B, ...], e.g. B envs stepped at once
    batch = buffer.sample(key, state)             # [batch_size, ...], uniform over filled slots

    states = jax.vmap(buffer.add)(states, items)  # many seeds at once
    batches = jax.vmap(buffer.sample)(keys, states)

The buffer stores whatever pytree it is given. The DDPG/TD3 agents store a Transition-like
NamedTuple with ``obs``, ``action``, ``reward``, ``next_obs`` and ``terminated``, where
``next_obs`` is the true successor of ``obs`` (at an episode end the final observation,
``info["final_observation"]``, never the first observation of the next episode) and
``terminated`` is termination only, not truncation: the critic target is
``r + gamma * (1 - terminated) * Q'(next_obs, mu'(next_obs))``, so a time limit still
bootstraps (docs/conventions.md).

Storage is a ring: a batch of B items goes to slots ``(insert_pos + arange(B)) % capacity``,
overwriting the oldest items once the buffer is full. ``B`` is static (it is the leading axis
of ``items``); a batch larger than ``capacity`` is accepted and keeps only its last
``capacity`` items, exactly as adding its items one at a time would.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from rljax.types import Array, PRNGKey

ArrayTree = Any  # a pytree of arrays, e.g. a Transition NamedTuple


class ReplayState(NamedTuple):
    """The state of a replay buffer: storage plus a circular insert pointer.

    Under ``jax.vmap`` across seeds every field gains a leading seed axis [S, ...].
    """

    data: ArrayTree  # pytree; each leaf shape=(capacity, *item_leaf.shape), item_leaf.dtype.
    insert_pos: Array  # shape=(), dtype=jnp.int32; slot the next item goes to.
    size: Array  # shape=(), dtype=jnp.int32; filled slots, in [0, capacity].


ReplayInitFn = Callable[[ArrayTree], ReplayState]
ReplayAddFn = Callable[[ReplayState, ArrayTree], ReplayState]
ReplaySampleFn = Callable[[PRNGKey, ReplayState], ArrayTree]


class ReplayBuffer(NamedTuple):
    """Three pure functions implementing a fixed-capacity uniform replay buffer."""

    init: ReplayInitFn
    add: ReplayAddFn
    sample: ReplaySampleFn


def _check_int(name: str, value: Any, low: int, high: int | None = None, where: str = "") -> int:
    """Returns ``value`` as an int, or raises a ValueError naming the field and its range."""
    valid = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]{where}"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {valid}, got {value!r}") from None
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {valid}, got {value}")
    return value


def replay_buffer(capacity: int, batch_size: int) -> ReplayBuffer:
    """A uniform replay buffer holding the last ``capacity`` items of any pytree.

    Args:
      capacity: number of items stored; once full, the oldest are overwritten. >= 1.
      batch_size: number of items ``sample`` draws (uniformly, with replacement).
        In [1, capacity].

    Returns:
      A ``ReplayBuffer(init, add, sample)`` of pure, jittable, vmappable functions.

    Raises:
      ValueError: if ``capacity`` or ``batch_size`` is not an integer in its range; the
        message names the field and the valid range.
    """
    capacity = _check_int("capacity", capacity, 1)
    batch_size = _check_int("batch_size", batch_size, 1, capacity, where=" (capacity)")

    def init_fn(example: ArrayTree) -> ReplayState:
        """An empty buffer with zeroed storage shaped after one example item.

        Args:
          example: a pytree for ONE item (no batch axis), e.g. a Transition of
            single-step arrays; only its leaves' shapes and dtypes are used.

        Returns:
          A ``ReplayState`` whose ``data`` leaves are zeros of shape
          [capacity, *leaf.shape] with the leaf's dtype, and ``insert_pos = size = 0``.
        """
        chex.assert_tree_no_nones(example)

        def _alloc(leaf):
            leaf = jnp.asarray(leaf)
            return jnp.zeros((capacity, *leaf.shape), dtype=leaf.dtype)

        return ReplayState(
            data=jax.tree.map(_alloc, example),
            insert_pos=jnp.zeros((), dtype=jnp.int32),
            size=jnp.zeros((), dtype=jnp.int32),
        )

    def add_fn(state: ReplayState, items: ArrayTree) -> ReplayState:
        """Writes a batch of B items into the ring, overwriting the oldest when full.

        Item ``i`` goes to slot ``(insert_pos + i) % capacity``; then
        ``insert_pos <- (insert_pos + B) % capacity`` and ``size <- min(size + B, capacity)``.
        If ``B > capacity`` only the last ``capacity`` items are kept (the result equals
        adding the items one at a time).

        Args:
          state: the buffer state; ``data`` leaves [capacity, ...], scalar counters.
          items: a pytree with the same structure and leaf dtypes as ``state.data``; every
            leaf has shape [B, *item_shape] with one static B >= 1 (e.g. B vectorised envs
            stepped at once; B may be 1).

        Returns:
          The new ``ReplayState``.
        """
        chex.assert_rank([state.insert_pos, state.size], 0)
        chex.assert_tree_shape_prefix(state.data, (capacity,))
        chex.assert_trees_all_equal_structs(items, state.data)
        chex.assert_trees_all_equal_dtypes(items, state.data)
        leaves = jax.tree.leaves(items)
        if not leaves:
            return state
        jax.tree.map(lambda x, buf: chex.assert_rank(x, buf.ndim), items, state.data)
        num_items = leaves[0].shape[0]  # B, static
        jax.tree.map(
            lambda x, buf: chex.assert_shape(x, (num_items, *buf.shape[1:])), items, state.data
        )

        # Keep the last `capacity` items; their slots are distinct, so the scatter is exact.
        skipped = max(num_items - capacity, 0)
        kept = num_items - skipped
        slots = (state.insert_pos + skipped + jnp.arange(kept, dtype=jnp.int32)) % capacity

        def _write(buf, x):
            return buf.at[slots].set(x[skipped:], unique_indices=True)

        return ReplayState(
            data=jax.tree.map(_write, state.data, items),
            insert_pos=((state.insert_pos + num_items) % capacity).astype(jnp.int32),
            size=jnp.minimum(state.size + min(num_items, capacity), capacity).astype(jnp.int32),
        )

    def sample_fn(key: PRNGKey, state: ReplayState) -> ArrayTree:
        """Draws ``batch_size`` items uniformly, with replacement, from the filled slots.

        Indices are drawn from [0, size) only, so an unfilled (zeroed) slot is never
        returned once at least one item has been added. Sampling an empty buffer is not
        an error under jit; it returns copies of slot 0 (zeros): callers gate updates on
        ``size`` (e.g. a ``learning_starts`` >= ``batch_size``).

        Args:
          key: a PRNG key (``jax.random.key(seed)``).
          state: the buffer state.

        Returns:
          A pytree like ``state.data`` whose leaves have shape [batch_size, *item_shape].
        """
        chex.assert_rank([state.insert_pos, state.size], 0)
        chex.assert_tree_shape_prefix(state.data, (capacity,))
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
        return jax.tree.map(lambda buf: buf[idx], state.data)

    return ReplayBuffer(init=init_fn, add=add_fn, sample=sample_fn)


def memory_bytes(state: ReplayState) -> int:
    """Bytes held by the buffer's storage (the ``data`` leaves; counters not included).

    Works on concrete arrays and on abstract ones (``jax.eval_shape(buffer.init, example)``),
    so the memory of a buffer can be reported before it is allocated. For a batch of states
    (leading seed axis) it counts all seeds.

    Args:
      state: a ``ReplayState`` (or its ``jax.ShapeDtypeStruct`` skeleton).

    Returns:
      The sum over ``data`` leaves of ``prod(shape) * itemsize``, as a Python int.
    """
    return sum(
        math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
        for leaf in jax.tree.leaves(state.data)
    )
