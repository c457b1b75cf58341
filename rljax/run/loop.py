"""One training update for every agent and env family: collect, then ``learn_step``.

The runner's state is a :class:`Carry`: the agent's own state (params, optimiser state, key,
counters, replay), the environments' state and current observations, and the window of the
last completed episodes. One update collects with the agent's behaviour policy, hands the
:class:`~rljax.types.Transition` [T, N] to ``agent.learn_step``, and then does the bookkeeping
every agent shares (the episode window and its metrics, the ``update``/``env_steps``
counters). On gymnax envs the collection runs inside jit (:func:`update_fn`); on host envs it
runs in Python and only :func:`learn_fn` is jitted. :func:`make_train` runs the same updates as
the runner in one function (one chunk), for tests and benchmarks; XLA may fuse scans of other
lengths differently, so chunked and unchunked runs agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rljax import envs
from rljax.agents.fields import num_updates
from rljax.agents.protocol import Agent, episode_metrics
from rljax.rollout import keep_first_episode, rollout, rollout_episodes
from rljax.types import Array, EpisodeWindow, PRNGKey, Transition


class Carry(NamedTuple):
    """One run's state between updates."""

    agent: Any  # the agent's state (its NamedTuple)
    env_state: Any  # envs.VecEnvState on gymnax; None for host envs
    obs: Array  # [N, *obs_shape] current observations (zeros for host envs)
    window: EpisodeWindow
    key: PRNGKey  # the collection stream: split once per update


class Streams(NamedTuple):
    """A run's random streams, one ``split`` of its run key (each split again where used)."""

    init: PRNGKey  # agent.init (networks, the agent's own key)
    env: PRNGKey  # the first reset of the envs
    collect: PRNGKey  # actions and env steps while training (Carry.key)
    eval_greedy: PRNGKey  # the greedy evaluation
    eval_sampled: PRNGKey  # the sampled evaluation
    render: PRNGKey  # the GIF's episode


def streams(run_key: PRNGKey) -> Streams:
    """The named streams of the run whose key is ``run_key``."""
    return Streams(*jax.random.split(run_key, len(Streams._fields)))


def clip_action(spec: envs.EnvSpec) -> Callable[[Array], Array] | None:
    """What the env receives: continuous actions clipped to the bounds (None: as sampled)."""
    if spec.discrete:
        return None
    return lambda a: jnp.clip(a, spec.action_low, spec.action_high)


def learn_fn(agent: Agent, config: Any, spec: envs.EnvSpec, warmup: bool = False):
    """``learn(carry, traj) -> (carry, metrics)``: the agent's learning step and the shared
    bookkeeping (episode window and metrics, counters). The same on every env family."""
    steps = config.steps_per_update(spec)

    def learn(carry: Carry, traj: Transition):
        state, metrics = agent.learn_step(carry.agent, traj, config, spec, warmup)
        window, episodes = episode_metrics(carry.window, traj, spec.solved_threshold)
        state = state._replace(update=state.update + 1, env_steps=state.env_steps + steps)
        return carry._replace(agent=state, window=window), {**episodes, **metrics}

    return learn


def collect_fn(agent: Agent, config: Any, spec: envs.EnvSpec, env, env_params, warmup: bool):
    """``collect(carry) -> (key, env_state, obs, traj)`` on gymnax envs, inside jit."""
    coll = agent.collection(config, spec)
    policy = agent.make_policy(config, spec, warmup)
    to_env = clip_action(spec)

    def collect(carry: Carry):
        key, update_key = jax.random.split(carry.key)
        act = lambda k, obs: policy(k, carry.agent, obs)  # noqa: E731
        if coll.episodic:  # fresh envs, one episode each; the carried envs wait
            reset_key, roll_key = jax.random.split(update_key)
            env_state, obs = envs.reset(reset_key, env, env_params, coll.num_envs)
            step_keys = jax.random.split(roll_key, coll.num_steps)
            traj = rollout_episodes(step_keys, act, env, env_params, env_state, obs, to_env)
            return key, carry.env_state, carry.obs, keep_first_episode(traj)
        step_keys = jax.random.split(update_key, coll.num_steps)
        env_state, obs, traj = rollout(
            step_keys, act, env, env_params, carry.env_state, carry.obs, to_env
        )
        return key, env_state, obs, traj

    return collect


def update_fn(agent: Agent, config: Any, spec: envs.EnvSpec, env, env_params, warmup: bool):
    """``update(carry) -> (carry, metrics)``: one gymnax update (collect, then learn)."""
    collect = collect_fn(agent, config, spec, env, env_params, warmup)
    learn = learn_fn(agent, config, spec, warmup)

    def update(carry: Carry):
        key, env_state, obs, traj = collect(carry)
        return learn(carry._replace(env_state=env_state, obs=obs, key=key), traj)

    return update


def init_fn(agent: Agent, config: Any, spec: envs.EnvSpec, env=None, env_params=None):
    """``init(run_key) -> Carry``: the agent's state and (on gymnax) the reset envs, each
    from its own stream of the run key (:func:`streams`)."""
    num_envs = agent.collection(config, spec).num_envs

    def init(run_key: PRNGKey) -> Carry:
        keys = streams(run_key)
        state = agent.init(keys.init, config, spec)
        window = envs.episode_window_init()
        if env is None:  # host envs: the environments live in Python
            obs = jnp.zeros((num_envs, *spec.obs_shape), jnp.float32)
            return Carry(state, None, obs, window, keys.collect)
        env_state, obs = envs.reset(keys.env, env, env_params, num_envs)
        # Some resets leave weak-typed leaves that step makes strong: a retrace per chunk.
        env_state = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), env_state)
        return Carry(state, env_state, obs, window, keys.collect)

    return init


def phases(agent: Agent, config: Any, spec: envs.EnvSpec, start: int, length: int):
    """``[(warmup, n), ...]``: updates ``start .. start + length`` split at the warm-up's end."""
    warm = agent.warmup_updates(config, spec)
    a = max(0, min(warm - start, length))
    return [(w, n) for w, n in ((True, a), (False, length - a)) if n > 0]


def chunk_fn(agent: Agent, config: Any, spec: envs.EnvSpec, env, env_params, start, length):
    """``chunk(carry) -> (carry, metrics[length])``: updates ``start .. start + length`` of one
    run, each phase one ``lax.scan``."""
    parts = phases(agent, config, spec, start, length)

    def chunk(carry: Carry):
        out = []
        for warmup, n in parts:
            update = update_fn(agent, config, spec, env, env_params, warmup)
            carry, metrics = jax.lax.scan(lambda c, _: update(c), carry, None, length=n)  # noqa: B023
            out.append(metrics)
        return carry, jax.tree.map(lambda *xs: jnp.concatenate(xs), *out)

    return chunk


REGION_ANALYSIS = {"xla_cpu_copy_insertion_use_region_analysis": True}
WIDE_VECTORS = {"xla_cpu_prefer_vector_width": 512}


def compiler_options(agent: Agent, backend: str | None = None) -> dict[str, Any]:
    """XLA options for compiling ``agent``'s training program (``Lowered.compile``).

    On the CPU, replay agents compile with two options (measured on two cores):

    * copy insertion's region analysis. A replay agent's update writes into the buffer and
      then samples from it. XLA:CPU fuses that write into the sampling gather and then copies
      the whole buffer in every update to keep the old one alive for it; region analysis
      drops those copies. The same results bit for bit: TD3 14% faster, SAC 0-4%, DDPG
      unchanged.
    * 512-bit vectors where the CPU has them (XLA:CPU prefers 256 by default; a CPU without
      AVX-512 ignores it). SAC's update spends about a third of its time in elementwise
      kernels (SiLU's exponentials, Adam), which run wider: SAC's ``rejax`` preset 6-7% faster
      on one and two devices, DDPG 3%, TD3 unchanged. It changes the rounding of vectorised
      loops, so results agree with a 256-bit build to float rounding, not bit for bit.

    On-policy agents compile with XLA's defaults: region analysis made A2C 7% slower and PPO no
    faster, and wide vectors left A2C and PPO as fast as before.
    """
    from rljax.agents.off_policy import ReplayConfig

    if (backend or jax.default_backend()) != "cpu" or not issubclass(agent.config, ReplayConfig):
        return {}
    return {**REGION_ANALYSIS, **WIDE_VECTORS}


def make_train(agent: Agent, config: Any, env: Any, env_params: Any):
    """``train(key) -> (carry, metrics[num_updates])``: one run, every update, on gymnax.

    The updates the runner runs chunk by chunk (:mod:`rljax.run.experiment`), in one chunk.
    """
    spec = envs.spec(env, env_params)
    n = num_updates(config.total_steps, config.steps_per_update(spec))
    init = init_fn(agent, config, spec, env, env_params)
    chunk = chunk_fn(agent, config, spec, env, env_params, 0, n)
    return lambda key: chunk(init(key))
