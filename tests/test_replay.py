"""Tests for rljax.replay against a plain Python ring buffer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.replay import ReplayBuffer, ReplayState, memory_bytes, replay_buffer


class Item(NamedTuple):
    """A DDPG-like transition: the shape of what the agents store."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


OBS_DIM = 3


def make_items(ids, action_dtype=np.float32) -> Item:
    """Items whose every field is a function of an integer id, so slots can be identified."""
    ids = np.asarray(ids, dtype=np.int64)
    obs = ids[:, None] * 10.0 + np.arange(OBS_DIM)
    return Item(
        obs=jnp.asarray(obs, dtype=jnp.float32),
        action=jnp.asarray(ids, dtype=action_dtype),
        reward=jnp.asarray(-ids, dtype=jnp.float32),
        next_obs=jnp.asarray(obs + 1.0, dtype=jnp.float32),
        terminated=jnp.asarray(ids % 2 == 1),
    )


def example_item(action_dtype=np.float32) -> Item:
    return jax.tree.map(lambda x: x[0], make_items([0], action_dtype))


class RefRing:
    """The plain-Python reference: add items one at a time to a list of slots."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.slots: list[int | None] = [None] * capacity
        self.insert_pos = 0
        self.size = 0

    def add(self, ids):
        for i in ids:
            self.slots[self.insert_pos] = int(i)
            self.insert_pos = (self.insert_pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def expected_data(self) -> Item:
        """Filled slots hold make_items(id); unfilled slots are zeros (False for bool)."""
        full = make_items([0 if s is None else s for s in self.slots])
        empty = np.array([s is None for s in self.slots])
        return jax.tree.map(
            lambda x: np.where(empty.reshape((-1,) + (1,) * (x.ndim - 1)), np.zeros_like(x), x),
            full,
        )


def assert_matches(state: ReplayState, ref: RefRing):
    assert int(state.insert_pos) == ref.insert_pos
    assert int(state.size) == ref.size
    jax.tree.map(np.testing.assert_array_equal, state.data, ref.expected_data())


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, n):
    return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(n)]


# --- init ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action_dtype", [np.float32, np.int32])
def test_init_preserves_shapes_and_dtypes(action_dtype):
    buffer = replay_buffer(capacity=7, batch_size=2)
    state = buffer.init(example_item(action_dtype))
    assert isinstance(state, ReplayState)
    assert isinstance(state.data, Item)
    assert state.data.obs.shape == (7, OBS_DIM) and state.data.obs.dtype == jnp.float32
    assert state.data.action.shape == (7,) and state.data.action.dtype == action_dtype
    assert state.data.reward.shape == (7,) and state.data.reward.dtype == jnp.float32
    assert state.data.terminated.shape == (7,) and state.data.terminated.dtype == jnp.bool_
    assert state.insert_pos.shape == () and state.insert_pos.dtype == jnp.int32
    assert state.size.shape == () and state.size.dtype == jnp.int32
    assert int(state.insert_pos) == 0 and int(state.size) == 0
    for leaf in jax.tree.leaves(state.data):
        assert not np.any(np.asarray(leaf))


def test_init_accepts_any_pytree():
    buffer = replay_buffer(capacity=4, batch_size=1)
    example = {"a": jnp.zeros((2, 5), jnp.float16), "b": (jnp.int8(3), np.zeros((), np.uint8))}
    state = buffer.init(example)
    assert state.data["a"].shape == (4, 2, 5) and state.data["a"].dtype == jnp.float16
    assert state.data["b"][0].shape == (4,) and state.data["b"][0].dtype == jnp.int8
    assert state.data["b"][1].dtype == jnp.uint8


# --- add ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_jit", [False, True])
def test_wraparound_three_batches_of_four_into_capacity_ten(use_jit):
    buffer = replay_buffer(capacity=10, batch_size=3)
    add = jax.jit(buffer.add) if use_jit else buffer.add
    state = buffer.init(example_item())
    ref = RefRing(10)
    assert_matches(state, ref)
    for batch in range(3):
        ids = np.arange(1 + 4 * batch, 5 + 4 * batch)  # ids 1..12 over the three batches
        state = add(state, make_items(ids))
        ref.add(ids)
        assert_matches(state, ref)
    # Hand-checked: ids 11, 12 wrapped into slots 0, 1; slots 2..9 hold ids 3..10.
    np.testing.assert_array_equal(state.data.action, [11, 12, 3, 4, 5, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(state.data.obs[0], [110.0, 111.0, 112.0])
    np.testing.assert_array_equal(state.data.terminated[:3], [True, False, True])
    assert int(state.insert_pos) == 2 and int(state.size) == 10


def test_add_batch_of_one_inside_scan_matches_reference():
    buffer = replay_buffer(capacity=5, batch_size=2)

    @jax.jit
    def fill(state, items):  # items: [T, 1, ...]; one item per step, as in a 1-env loop
        return jax.lax.scan(lambda s, x: (buffer.add(s, x), None), state, items)[0]

    ids = np.arange(1, 13)
    items = jax.tree.map(lambda x: x[:, None], make_items(ids))
    state = fill(buffer.init(example_item()), items)
    ref = RefRing(5)
    ref.add(ids)
    assert_matches(state, ref)


@pytest.mark.parametrize("start, num_items", [(0, 7), (3, 7), (2, 10), (4, 23)])
def test_batch_larger_than_capacity_keeps_the_last_capacity_items(start, num_items):
    capacity = 5
    buffer = replay_buffer(capacity=capacity, batch_size=1)
    ref = RefRing(capacity)
    state = buffer.init(example_item())
    if start:
        first = np.arange(100, 100 + start)
        state = buffer.add(state, make_items(first))
        ref.add(first)
    ids = np.arange(1, num_items + 1)
    state = buffer.add(state, make_items(ids))
    ref.add(ids)
    assert_matches(state, ref)
    assert sorted(np.asarray(state.data.action).astype(int)) == list(ids[-capacity:])


def test_add_rejects_mismatched_items():
    buffer = replay_buffer(capacity=4, batch_size=1)
    state = buffer.init(example_item())
    good = make_items([1, 2])
    with pytest.raises(AssertionError):  # wrong trailing shape
        buffer.add(state, good._replace(obs=jnp.zeros((2, OBS_DIM + 1), jnp.float32)))
    with pytest.raises(AssertionError):  # missing batch axis
        buffer.add(state, example_item())
    with pytest.raises(AssertionError):  # inconsistent batch sizes across leaves
        buffer.add(state, good._replace(reward=jnp.zeros((3,), jnp.float32)))
    with pytest.raises(AssertionError):  # wrong dtype
        buffer.add(state, good._replace(terminated=jnp.zeros((2,), jnp.float32)))
    with pytest.raises(AssertionError):  # wrong structure
        buffer.add(state, {"obs": good.obs})


# --- sample -------------------------------------------------------------------------------


def _sample_many(buffer: ReplayBuffer, state: ReplayState, num_keys: int, seed: int):
    keys = jax.random.split(jax.random.key(seed), num_keys)
    return jax.jit(jax.vmap(buffer.sample, in_axes=(0, None)))(keys, state)


def test_sample_shapes_dtypes_and_consistency():
    buffer = replay_buffer(capacity=10, batch_size=6)
    state = buffer.add(buffer.init(example_item(np.int32)), make_items(np.arange(1, 9), np.int32))
    batch = jax.jit(buffer.sample)(jax.random.key(0), state)
    assert isinstance(batch, Item)
    assert batch.obs.shape == (6, OBS_DIM) and batch.obs.dtype == jnp.float32
    assert batch.action.shape == (6,) and batch.action.dtype == jnp.int32
    assert batch.terminated.shape == (6,) and batch.terminated.dtype == jnp.bool_
    # Every field of a sampled row comes from the same stored item.
    jax.tree.map(np.testing.assert_array_equal, batch, make_items(batch.action, np.int32))
    again = jax.jit(buffer.sample)(jax.random.key(0), state)
    jax.tree.map(np.testing.assert_array_equal, batch, again)  # same key, same batch


@pytest.mark.parametrize("filled", [1, 3, 7])
def test_sample_never_returns_an_unfilled_slot(filled):
    capacity = 16
    buffer = replay_buffer(capacity=capacity, batch_size=8)
    state = buffer.add(buffer.init(example_item()), make_items(np.arange(1, filled + 1)))
    ids = np.asarray(_sample_many(buffer, state, num_keys=200, seed=filled).action)
    assert ids.shape == (200, 8)
    assert set(np.unique(ids).astype(int)) == set(range(1, filled + 1))  # never 0, all hit


def test_sample_after_wraparound_covers_every_slot():
    buffer = replay_buffer(capacity=6, batch_size=4)
    state = buffer.add(buffer.init(example_item()), make_items(np.arange(1, 10)))  # 9 items
    ids = np.asarray(_sample_many(buffer, state, num_keys=100, seed=1).action)
    assert set(np.unique(ids).astype(int)) == set(range(4, 10))  # the last six items


@pytest.mark.parametrize("capacity, filled", [(8, 8), (12, 5)])
def test_sample_is_uniform_over_filled_slots(capacity, filled):
    buffer = replay_buffer(capacity=capacity, batch_size=4)
    state = buffer.add(buffer.init(example_item()), make_items(np.arange(1, filled + 1)))
    ids = np.asarray(_sample_many(buffer, state, num_keys=2_500, seed=7).action).ravel()
    counts = np.bincount(ids.astype(int), minlength=filled + 1)[1:]
    expected = ids.size / filled
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # Pearson chi-square with filled - 1 <= 7 degrees of freedom: its 99.99% quantile is
    # below 30, so 40 is generous; a systematic bias of a few percent would exceed it.
    assert counts.sum() == 10_000
    assert chi2 < 40.0, (chi2, counts)
    assert np.all(np.abs(counts - expected) < 0.1 * expected), counts


# --- many seeds ---------------------------------------------------------------------------


def test_vmap_across_seeds_matches_each_seed_alone():
    buffer = replay_buffer(capacity=10, batch_size=5)
    empty = buffer.init(example_item())
    # Three seeds at different fill levels (0, 4 and 9 items, the last about to wrap) and
    # with different data.
    singles = [empty]
    singles.append(buffer.add(empty, make_items(np.arange(100, 104))))
    singles.append(buffer.add(empty, make_items(np.arange(200, 209))))
    states = stack(singles)
    new_items = [make_items(np.arange(1000 * (s + 1), 1000 * (s + 1) + 3)) for s in range(3)]

    added = jax.jit(jax.vmap(buffer.add))(states, stack(new_items))
    assert added.insert_pos.shape == (3,) and added.size.shape == (3,)
    np.testing.assert_array_equal(added.size, [3, 7, 10])
    np.testing.assert_array_equal(added.insert_pos, [3, 7, 2])
    for alone_in, items, batched in zip(singles, new_items, unstack(added, 3), strict=True):
        jax.tree.map(np.testing.assert_array_equal, batched, buffer.add(alone_in, items))

    keys = jax.random.split(jax.random.key(3), 3)
    batches = jax.jit(jax.vmap(buffer.sample))(keys, added)
    assert batches.obs.shape == (3, 5, OBS_DIM)
    for key, alone, batch in zip(keys, unstack(added, 3), unstack(batches, 3), strict=True):
        jax.tree.map(np.testing.assert_array_equal, batch, buffer.sample(key, alone))
        ids = np.asarray(batch.action).astype(int)
        valid = set(np.asarray(alone.data.action[: int(alone.size)]).astype(int))
        assert set(ids) <= valid and 0 not in ids


def test_vmapped_init_then_add_and_sample_under_jit():
    buffer = replay_buffer(capacity=4, batch_size=2)
    examples = stack([example_item()] * 5)
    states = jax.vmap(buffer.init)(examples)
    assert states.data.obs.shape == (5, 4, OBS_DIM) and states.size.shape == (5,)

    @jax.jit
    def step(keys, states, items):
        states = jax.vmap(buffer.add)(states, items)
        return states, jax.vmap(buffer.sample)(keys, states)

    items = stack([make_items([s + 1, s + 2, s + 3]) for s in range(5)])
    states, batch = step(jax.random.split(jax.random.key(0), 5), states, items)
    np.testing.assert_array_equal(states.size, [3] * 5)
    ids = np.asarray(batch.action).astype(int)
    for s in range(5):
        assert set(ids[s]) <= {s + 1, s + 2, s + 3}


# --- factory and memory -------------------------------------------------------------------


@pytest.mark.parametrize(
    "capacity, batch_size, field",
    [
        (0, 1, "capacity"),
        (-3, 1, "capacity"),
        (2.5, 1, "capacity"),
        (True, 1, "capacity"),
        (10, 0, "batch_size"),
        (10, -1, "batch_size"),
        (10, 11, "batch_size"),
        (10, 2.0, "batch_size"),
    ],
)
def test_factory_rejects_bad_arguments(capacity, batch_size, field):
    with pytest.raises(ValueError, match=rf"^{field} must be an integer"):
        replay_buffer(capacity=capacity, batch_size=batch_size)


def test_factory_accepts_edge_values():
    buffer = replay_buffer(capacity=1, batch_size=1)
    state = buffer.add(buffer.init(example_item()), make_items([5, 6]))
    assert int(state.size) == 1 and int(state.data.action[0]) == 6
    replay_buffer(10, 10)
    replay_buffer(capacity=np.int64(10), batch_size=np.int32(3))


def test_memory_bytes():
    buffer = replay_buffer(capacity=10, batch_size=2)
    example = example_item(np.int32)
    # obs 10*3*4 + action 10*4 + reward 10*4 + next_obs 10*3*4 + terminated 10*1 = 330.
    state = buffer.init(example)
    assert memory_bytes(state) == 330
    assert memory_bytes(state) == sum(x.nbytes for x in jax.tree.leaves(state.data))
    assert memory_bytes(jax.eval_shape(buffer.init, example)) == 330  # before allocating
    assert memory_bytes(stack([state] * 3)) == 3 * 330
    assert isinstance(memory_bytes(state), int)
