"""Run an experiment: many seeds at once, trained in chunks, evaluated, results on disk.

ONE chunked training loop (:func:`train_and_evaluate`) for every agent and env family: an
outer Python loop over chunks of updates, so progress shows and every chunk's metrics are
written as the run goes. The env family decides how a chunk runs: gymnax envs
(:class:`rljax.run.gymnax.GymnaxRuns`, the whole chunk one jitted ``lax.scan`` mapped over the
runs, sharded over devices and processes) or Gymnasium envs on the host
(:class:`rljax.run.host.HostRuns`, collection in Python, learning jitted). Both run the
agent's protocol through :mod:`rljax.run.loop`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import envs, envs_gymnasium
from rljax.agents import Agent, ConfigError
from rljax.run import parallel, results


def build_config(agent: Agent, preset: str, overrides: dict[str, Any], spec: envs.EnvSpec) -> Any:
    """The agent's config: defaults, then the preset, then explicit overrides; validated."""
    if preset not in agent.presets:
        raise ConfigError(
            f"--preset {preset!r} is not a preset of {agent.name}; "
            f"valid: {', '.join(agent.presets)}"
        )
    config = agent.config(**{**agent.presets[preset], **overrides})
    config.validate(spec)
    return config


def env_spec(env_name: str) -> envs.EnvSpec:
    """The :class:`~rljax.envs.EnvSpec` of a gymnax env or a ``gymnasium:ID`` env."""
    if envs_gymnasium.is_bridged(env_name):
        return envs_gymnasium.spec(env_name)
    return envs.spec(*envs.make(env_name))


def run_keys(seed: int, num_seeds: int) -> jax.Array:
    """Run i's key is ``fold_in(key(seed), i)``: independent of how many runs share a batch."""
    root = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num_seeds))


def chunk_lengths(num_updates: int, num_chunks: int) -> list[int]:
    """Split the updates into about ``num_chunks`` equal chunks (one compile if possible).

    Prefers a chunk count near ``num_chunks`` that divides ``num_updates``; otherwise the last
    chunk is shorter (and compiles once more).
    """
    k = max(1, min(num_chunks, num_updates))
    for d in sorted(range(max(1, k // 2), min(2 * k, num_updates) + 1), key=lambda d: abs(d - k)):
        if num_updates % d == 0:
            return [num_updates // d] * d
    size = math.ceil(num_updates / k)
    lengths = [size] * (num_updates // size)
    return lengths + ([num_updates % size] if num_updates % size else [])


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How :func:`train_and_evaluate` runs (everything but what is trained).

    Attributes:
      num_chunks: about this many chunks (progress lines, metrics rows, checkpoints).
      eval_episodes: evaluation episodes per seed (greedy and sampled each).
      quiet: no progress lines.
      checkpoint_every: a checkpoint every this many chunks and at the end, under
        ``out/checkpoints`` (gymnax only); None: none.
      resume: continue from the newest checkpoint in ``out`` (bitwise as uninterrupted on CPU).
      visuals: write ``curves.png`` and ``episode.gif``.
      run_configs: for a sweep, the config with a leading run axis on its float leaves (every
        run its own hyperparameters, one compile); None: every run shares ``config``.
      keys: each run's key; None: :func:`run_keys`.
      devices: devices to shard the runs over (gymnax; every process's devices counted).
      seed_block: runs per vmapped block on each device (``"auto"``: 64 on CPU, else one vmap).
      vector_mode: Gymnasium vector envs, ``"sync"`` or ``"async"`` (host envs).
      running_thresholds: Keras running-reward thresholds to report (with the env's solved
        threshold): the episode count at which each run's running reward first reached each.
      extra_summary: more fields for ``summary.json``.
      on_chunk: ``on_chunk(i, state)`` after chunk ``i``.
      trackers: an :class:`rljax.io.trackers.Trackers` to log each chunk to.
      stop_when_solved: end training after the first chunk at which every run's training
        window (the mean of its last 100 episodes) has reached the env's solved threshold;
        the budget's remaining updates are skipped (the summary records where it stopped).
    """

    num_chunks: int = 50
    eval_episodes: int = 100
    quiet: bool = False
    checkpoint_every: int | None = 10
    resume: bool = False
    visuals: bool = True
    run_configs: Any = None
    keys: Any = None
    devices: int = 1
    seed_block: int | str | None = "auto"
    vector_mode: str = "sync"
    running_thresholds: Sequence[float] = ()
    extra_summary: dict[str, Any] | None = None
    on_chunk: Callable[[int, Any], None] | None = None
    trackers: Any = None
    stop_when_solved: bool = False


@dataclasses.dataclass
class RunResult:
    state: Any  # the runs' rljax.run.loop.Carry (leading run axis)
    summary: dict[str, Any]


def make_runs(agent: Agent, config, env_name: str, num_seeds: int, seed: int, opts: RunOptions):
    """The env family's runs: :class:`~rljax.run.host.HostRuns` for ``gymnasium:ID``, else
    :class:`~rljax.run.gymnax.GymnaxRuns`."""
    keys = run_keys(seed, num_seeds) if opts.keys is None else opts.keys
    if envs_gymnasium.is_bridged(env_name):
        from rljax.run.host import HostRuns

        return HostRuns(
            agent, config, env_name, keys, seed, opts.vector_mode, opts.running_thresholds
        )
    from rljax.run.gymnax import GymnaxRuns

    configs = opts.run_configs
    if configs is None:  # every run shares the config
        configs = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_seeds, *jnp.shape(x))), config)
    return GymnaxRuns(
        agent,
        config,
        env_name,
        keys,
        configs,
        opts.devices,
        opts.seed_block,
        opts.running_thresholds,
    )


def train_and_evaluate(
    agent: Agent, config: Any, env_name: str, num_seeds: int, seed: int, out: Path, **options
) -> RunResult:
    """Train ``num_seeds`` runs at once, evaluate them, and write the results folder.

    ``options`` are :class:`RunOptions`. Writes ``metrics.csv`` as the run goes, checkpoints
    (gymnax), then evaluates (greedy and sampled policies) and writes ``curves.png`` and
    ``episode.gif``; returns the final state and the summary (the caller writes it).

    In a multi-process run (``jax.distributed.initialize`` called before JAX starts) every
    process calls this with the same arguments, ``devices`` counts every process's devices,
    each process computes only its own runs and only process 0 writes ``out``. Checkpoints are
    single-process only: pass ``checkpoint_every=None`` and no ``resume``.

    Raises:
      NonFiniteError: if parameters or losses become non-finite (the last good checkpoint is
        kept).
      CheckpointError: if ``resume`` finds no usable checkpoint.
    """
    opts = RunOptions(**options)
    if jax.process_count() > 1 and (opts.checkpoint_every is not None or opts.resume):
        raise ConfigError(
            "checkpoints are not supported in a multi-process run (checkpoint_every=None)"
        )
    wall_start = time.perf_counter()
    primary = parallel.is_primary()
    if primary:
        out.mkdir(parents=True, exist_ok=True)
    runs = make_runs(agent, config, env_name, num_seeds, seed, opts)
    try:
        steps_per_update = config.steps_per_update(runs.spec)
        lengths = chunk_lengths(config.total_steps // steps_per_update, opts.num_chunks)
        meta = {"agent": agent.name, "env": env_name, "num_seeds": num_seeds, "seed": seed}
        state, done, timing, progress = _train(runs, config, lengths, out, opts, primary, meta)
        t = time.perf_counter()
        greedy, sampled = runs.evaluate(state, opts.eval_episodes)
        timing["eval_time_s"] = round(time.perf_counter() - t, 3)
    finally:
        runs.close()
    updates = progress.updates
    summary: dict[str, Any] = {
        "agent": agent.name,
        "env": env_name,
        "num_seeds": num_seeds,
        "seed": seed,
        **runs.summary,
        "total_steps": int(updates * steps_per_update),
        "num_updates": updates,
        "budget_steps": int(sum(lengths) * steps_per_update),
        "stopped_when_solved": updates < sum(lengths),
        "steps_to_solve": progress.steps_to_solve,
        "eval_episodes": opts.eval_episodes,
        **results.evaluation_summary(
            greedy, sampled, runs.spec.solved_threshold, runs.solved_at(state)
        ),
        **runs.final_summary(),
        **timing,
        "wall_time_s": round(time.perf_counter() - wall_start, 3),
        "steps_per_second": round(
            runs.train_steps_per_second(updates - done, num_seeds, timing["train_time_s"]), 1
        ),
        "versions": results.versions(),
        **(opts.extra_summary or {}),
    }
    if opts.visuals:
        params = runs.host_params(state)  # every process takes part in the gather
        if primary:
            try:
                summary["median_seed"] = runs.write_visuals(out, params, greedy.mean(1))
            except Exception as e:  # a failed plot must not cost a long run its results
                print(
                    f"curves.png/episode.gif not written: {type(e).__name__}: {e}", file=sys.stderr
                )
    return RunResult(state=state, summary=summary)


def _start(runs, config, out: Path, opts: RunOptions, meta: dict):
    """``(state, chunks done, checkpoint manager, metadata)``: fresh, or from a checkpoint."""
    from rljax.io import checkpoint

    meta = {
        **meta,
        "config_hash": checkpoint.config_hash(results.config_dict(config)),
        "versions": results.versions(),
    }
    use = runs.checkpoints and opts.checkpoint_every is not None
    mngr = checkpoint.manager(out / "checkpoints") if use else None
    if not opts.resume:
        return runs.init(), 0, mngr, meta
    step = None if mngr is None else mngr.latest_step()
    if step is None:
        raise checkpoint.CheckpointError(f"no checkpoint in {out / 'checkpoints'}")
    state, saved = checkpoint.restore(mngr, step, runs.abstract_state())
    if saved.get("config_hash") != meta["config_hash"]:
        raise checkpoint.CheckpointError("checkpoint was written with another config")
    return parallel.put(state, getattr(runs, "sharding", None)), int(saved["chunks"]), mngr, meta


class TrainProgress(NamedTuple):
    """How far :func:`_train` went: updates done (all of the budget unless stopped when
    solved) and each run's env steps at the end of the chunk in which its training window
    first reached the solved threshold (None: not solved, or solved before a resume)."""

    updates: int
    steps_to_solve: list[int | None] | None


def _train(runs, config, lengths, out: Path, opts: RunOptions, primary: bool, meta: dict):
    """Every chunk from the first not yet done: metrics rows, progress, checkpoints; stops
    early once every run is solved if ``opts.stop_when_solved``."""
    from rljax.io import checkpoint

    t = time.perf_counter()
    state, done, mngr, meta = _start(runs, config, out, opts, meta)
    if done:
        runs.running.resume(*parallel.to_host((state.window.count, state.window.running)))
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    runs.compile(state, list(zip(starts, lengths, strict=True))[done:])
    timing = {"compile_time_s": round(time.perf_counter() - t, 3)}
    steps_per_update = config.steps_per_update(runs.spec)
    num_seeds = state.window.count.shape[0]
    progress = results.Progress(
        sum(lengths) * steps_per_update, num_seeds, opts.quiet or not primary
    )
    table = results.MetricsTable(
        out / "metrics.csv" if primary else None, sum(lengths[:done]) if opts.resume else None
    )
    threshold = runs.spec.solved_threshold
    solved_before = runs.solved_at(state) >= 0 if threshold is not None else None
    steps_to_solve = None if threshold is None else [None] * num_seeds
    updates = sum(lengths)
    train_start = time.perf_counter()
    try:
        for i in range(done, len(lengths)):
            state, per_seed, env_steps, finite = runs.chunk(state, starts[i], lengths[i])
            update = starts[i] + lengths[i]
            results.check_finite(per_seed, update, finite)
            table.write(update, env_steps, per_seed)
            progress.update(update * steps_per_update, per_seed["episode_return"])
            stop = False
            if threshold is not None:
                solved = runs.solved_at(state) >= 0
                for s in np.flatnonzero(solved & ~solved_before):
                    if steps_to_solve[s] is None:
                        steps_to_solve[s] = int(update * steps_per_update)
                stop = opts.stop_when_solved and bool(solved.all())
            last = i + 1 == len(lengths) or stop
            if mngr is not None and ((i + 1) % opts.checkpoint_every == 0 or last):
                checkpoint.save(mngr, i + 1, state, {**meta, "chunks": i + 1, "update": update})
            if opts.trackers is not None:
                opts.trackers.log(update * steps_per_update, per_seed)
            if opts.on_chunk is not None:
                opts.on_chunk(i, state)
            if stop:
                updates = update
                break
        jax.block_until_ready(state)
    finally:
        table.close()
        if mngr is not None:
            mngr.wait_until_finished()
            mngr.close()
    timing["train_time_s"] = round(time.perf_counter() - train_start, 3)
    progress.close()
    return state, sum(lengths[:done]), timing, TrainProgress(updates, steps_to_solve)
