"""Shared types: array aliases and the NamedTuples that flow between modules."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array  # a typed key made with `jax.random.key(seed)`
Params = Any  # a flax parameter pytree


class Transition(NamedTuple):
    """What one environment step records, for one or many envs (leading axes [T, N, ...]).

    `next_obs` is the true successor of `obs`: at an episode end it is the final observation
    (`info["final_observation"]`), never the first observation of the next episode.
    `episode_return` and `episode_length` are those of the episode that ended at this step;
    they are meaningful only where `terminated | truncated`.
    """

    obs: Array
    action: Array
    log_prob: Array
    reward: Array
    terminated: Array
    truncated: Array
    next_obs: Array
    episode_return: Array
    episode_length: Array

    @property
    def done(self) -> Array:
        return self.terminated | self.truncated


class EpisodeWindow(NamedTuple):
    """The last `window` completed training episodes of one run, oldest first.

    Used for the classic "solved" criterion (mean of the last 100 episodes >= threshold),
    with the Keras tutorial's running reward (:func:`rljax.envs.running_reward`).
    """

    returns: Array  # shape=(window,), dtype=float32; oldest first, valid where filled.
    count: Array  # shape=(), dtype=int32; completed episodes so far.
    solved_at: Array  # shape=(), dtype=int32; episodes when first solved, or -1.
    running: Array  # shape=(), dtype=float32; the Keras running reward (0 before any episode).
