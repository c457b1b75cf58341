"""Run an experiment: many seeds in one jit(vmap), trained in chunks, results on disk.

The training loop is an outer Python loop over jitted chunks of updates (the seed axis stays
inside one ``jit(vmap)``), so progress can be shown and every chunk's metrics are written as
the run goes. Chunked training runs exactly the updates ``make_train`` scans over.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax import batching, envs, evaluation
from rljax.agents import AGENTS, Agent, ConfigError
from rljax.run import loop

RESULT_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "episode.gif")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("rljax", "jax", "jaxlib", "flax", "optax", "distrax", "chex", "gymnax"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def config_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


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


def run_keys(seed: int, num_seeds: int) -> jax.Array:
    """Run i's key is ``fold_in(key(seed), i)``: independent of how many runs share a batch."""
    root = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num_seeds))


class Progress:
    """One status line per chunk on stderr: env steps, steps/s, ETA, mean return."""

    def __init__(self, total_steps: int, num_seeds: int, quiet: bool):
        self.total, self.num_seeds, self.quiet = total_steps, num_seeds, quiet
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, steps: int, mean_return: float) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        rate = steps * self.num_seeds / max(elapsed, 1e-9)
        eta = (self.total - steps) * self.num_seeds / max(rate, 1e-9)
        frac = steps / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        ret = "n/a" if math.isnan(mean_return) else f"{mean_return:8.1f}"
        line = (
            f"[{bar}] {steps:>10,}/{self.total:,} steps/seed | {rate:>11,.0f} steps/s | "
            f"ETA {eta:5.0f}s | return {ret}"
        )
        print(("\r" if self.tty else "") + line, end="" if self.tty else "\n", file=sys.stderr)
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(file=sys.stderr)


def _summarise_chunk(metrics: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    """Per-seed values of a chunk's metrics ([S, U] arrays -> [S])."""
    m = {k: np.asarray(v) for k, v in metrics.items()}
    count = m.pop("episode_count").sum(1)
    total = m.pop("episode_return_sum").sum(1)
    out = {
        "episodes": count,
        "episode_return": np.where(count > 0, total / np.maximum(count, 1), np.nan),
    }
    for k, v in m.items():
        out[k] = v[:, -1] if k.startswith("ema_") else v.mean(1)
    return out


def available_devices() -> int:
    """Devices a run can shard over: every process's devices in a multi-process run."""
    return len(jax.devices())


def is_primary() -> bool:
    """Whether this process writes results: process 0 (the only one in a one-process run)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """NumPy copies of every run's values on every process (a collective across processes).

    A one-process array is copied from its devices; an array sharded over several processes
    is gathered with ``process_allgather``, so all processes must call this together.
    """
    from jax.experimental import multihost_utils

    def one(x):
        if getattr(x, "is_fully_addressable", True):
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def _put(tree: Any, sharding: jax.NamedSharding | None) -> Any:
    """Place every leaf on ``sharding`` (PRNG key arrays go through their raw key data)."""
    if sharding is None:
        return tree

    def one(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(x, sharding)

    return jax.tree.map(one, tree)


def check_devices(devices: int, num_runs: int) -> None:
    """Reject a device count that is unavailable or does not divide the runs."""
    if devices < 1:
        raise ConfigError(f"--devices must be >= 1 or 'all', got {devices}")
    have = available_devices()
    if devices > have:
        raise ConfigError(
            f"--devices {devices} but only {have} {jax.default_backend()} device(s) available"
        )
    if num_runs % devices:
        raise ConfigError(f"--num-seeds {num_runs} runs are not divisible by --devices {devices}")


def auto_devices(num_runs: int) -> int:
    """The most devices (of :func:`available_devices`) that divide ``num_runs`` evenly."""
    return max(d for d in range(1, available_devices() + 1) if num_runs % d == 0)


def parse_devices(value: str, num_runs: int) -> int:
    """``--devices``: a number, ``all`` or ``auto`` (:func:`auto_devices`), as a device count."""
    if value == "all":
        return available_devices()
    if value == "auto":
        return auto_devices(num_runs)
    if not value.isdigit():
        raise ConfigError(f"--devices must be a number, 'all' or 'auto', got {value!r}")
    return int(value)


def run_sharding(devices: int, num_runs: int) -> jax.NamedSharding | None:
    """Sharding of a leading (run) axis across ``devices`` devices (None for one device)."""
    if devices <= 1:
        return None
    check_devices(devices, num_runs)
    mesh = jax.make_mesh((devices,), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.NamedSharding(mesh, jax.P("runs"))


def _jit(fn: Callable, sharding: jax.NamedSharding | None, **kw) -> Callable:
    """``jax.jit``; with a run sharding, every input and output leaf is sharded by run."""
    if sharding is None:
        return jax.jit(fn, **kw)
    return jax.jit(fn, in_shardings=sharding, out_shardings=sharding, **kw)


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


class NonFiniteError(RuntimeError):
    """Training produced non-finite parameters or losses."""


@dataclasses.dataclass
class RunResult:
    state: Any
    summary: dict[str, Any]


def _read_rows(path: Path, max_update: int) -> tuple[list[str] | None, list[list[str]]]:
    """Header and rows of an existing metrics.csv up to ``max_update`` (for resuming)."""
    if not path.exists():
        return None, []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None, []
    return rows[0], [r for r in rows[1:] if r and int(r[1]) <= max_update]


def _check_finite(state: Any, per_seed: dict[str, np.ndarray], update: int, params: Any) -> None:
    """Stop with one line naming the update, seeds and metric if anything is non-finite."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
    finite = np.all([np.isfinite(x).reshape(x.shape[0], -1).all(1) for x in leaves], axis=0)
    _check_finite_runs(per_seed, update, finite)


def _finite_runs(params: Any) -> jax.Array:
    """Per-run flag [S]: every parameter of the run is finite (computed on the devices)."""
    leaves = [jnp.isfinite(x).reshape(x.shape[0], -1).all(1) for x in jax.tree.leaves(params)]
    return jnp.stack(leaves).all(0)


def _check_finite_runs(per_seed: dict[str, np.ndarray], update: int, finite: np.ndarray) -> None:
    """``_check_finite`` given each run's parameter-finiteness flag."""
    for name, values in per_seed.items():
        bad = np.flatnonzero(~np.isfinite(values) & (name != "episode_return"))
        if bad.size:
            raise NonFiniteError(
                f"non-finite {name} by update {update} in seed(s) {', '.join(map(str, bad))}"
            )
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise NonFiniteError(
            f"non-finite parameters by update {update} in seed(s) {', '.join(map(str, bad))}"
        )


def train_and_evaluate(
    agent: Agent,
    config: Any,
    env_name: str,
    num_seeds: int,
    seed: int,
    out: Path,
    *,
    num_chunks: int = 50,
    eval_episodes: int = 100,
    quiet: bool = False,
    checkpoint_every: int | None = 10,
    resume: bool = False,
    visuals: bool = True,
    run_configs: Any = None,
    keys: jax.Array | None = None,
    devices: int = 1,
    seed_block: int | str | None = "auto",
    extra_summary: dict[str, Any] | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
    trackers: Any = None,
) -> RunResult:
    """Train ``num_seeds`` runs at once, evaluate them, and write the results folder.

    Writes ``metrics.csv`` as the run goes, a checkpoint every ``checkpoint_every`` chunks and
    at the end (under ``out/checkpoints``; none with ``checkpoint_every=None``), then evaluates
    and (with ``visuals``) writes ``curves.png`` and ``episode.gif``. With ``resume`` it
    continues from the newest checkpoint in ``out``; the result equals an uninterrupted run bit
    for bit on CPU.

    Raises:
      NonFiniteError: if parameters or losses become non-finite (the last good checkpoint is
        kept).
      CheckpointError: if ``resume`` finds no usable checkpoint.

    For a sweep, ``run_configs`` is ``config`` with a leading run axis on its float leaves
    (static fields shared), and ``keys`` gives each run's key: every run then trains with its
    own hyperparameters in the same single compile. With ``devices`` > 1 the run axis is
    sharded over that many devices (``jax.make_mesh`` + ``NamedSharding``, one ``shard_map``);
    each run computes what it would on one device. ``seed_block`` runs each device's runs in
    vmapped blocks of that many (:func:`rljax.batching.map_runs`); ``"auto"`` is
    :func:`rljax.batching.default_block` (64 on CPU, where larger vmaps are slower), None one
    vmap over all of a device's runs.

    In a multi-process run (``jax.distributed.initialize`` called before importing rljax, whose
    gymnax import starts JAX's backend) every process calls this with the same arguments, and
    ``devices`` counts every process's devices; each process computes only its own runs and
    only process 0 writes ``out``. Checkpoints are single-process only: pass
    ``checkpoint_every=None`` and no ``resume``.
    """
    from rljax.io import checkpoint

    if jax.process_count() > 1 and (checkpoint_every is not None or resume):
        raise ConfigError(
            "checkpoints are not supported in a multi-process run (checkpoint_every=None)"
        )
    primary = is_primary()

    env, env_params = envs.make(env_name)
    spec = envs.spec(env, env_params)
    steps_per_update = config.steps_per_update(spec)
    num_updates = config.total_steps // steps_per_update
    lengths = chunk_lengths(num_updates, num_chunks)

    if primary:
        out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    keys = run_keys(seed, num_seeds) if keys is None else keys
    if run_configs is None:  # every run shares the config
        run_configs = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (num_seeds, *jnp.shape(x))), config
        )
    sharding = run_sharding(devices, num_seeds)
    block = batching.default_block() if seed_block == "auto" else seed_block

    def over_runs(fn):
        return batching.map_runs(fn, block, sharding)

    split = jax.vmap(jax.random.split)(keys)  # on this process: every process has all keys
    host_eval_keys = split[:, 1]
    run_configs = _put(run_configs, sharding)
    train_keys, eval_keys = _put(split[:, 0], sharding), _put(host_eval_keys, sharding)

    def chunk(state, configs, start, length):
        def one(carry, c):
            return loop.chunk_fn(agent, c, spec, env, env_params, start, length)(carry)

        return over_runs(one)(state, configs)

    def parts(i):  # a chunk's phases (warm-up or learning): chunks alike compile once
        start = sum(lengths[:i])
        return tuple(loop.phases(agent, config, spec, start, lengths[i])), start

    meta_base = {
        "agent": agent.name,
        "env": env_name,
        "num_seeds": num_seeds,
        "seed": seed,
        "config_hash": checkpoint.config_hash(config_dict(config)),
        "versions": versions(),
    }
    t = time.perf_counter()
    init_fn = _jit(
        lambda ks, cs: over_runs(lambda k, c: loop.init_fn(agent, c, spec, env, env_params)(k))(
            ks, cs
        ),
        sharding,
    )
    mngr = None if checkpoint_every is None else checkpoint.manager(out / "checkpoints")
    done_chunks = 0
    if resume:
        step = mngr.latest_step()
        if step is None:
            raise checkpoint.CheckpointError(f"no checkpoint in {out / 'checkpoints'}")
        abstract = jax.eval_shape(init_fn, train_keys, run_configs)
        state, meta = checkpoint.restore(mngr, step, abstract)
        if meta.get("config_hash") != meta_base["config_hash"]:
            raise checkpoint.CheckpointError("checkpoint was written with another config")
        done_chunks = int(meta["chunks"])
        state = _put(state, sharding)
    else:
        state = init_fn(train_keys, run_configs)
    compiled: dict[tuple, Any] = {}
    for i in range(done_chunks, len(lengths)):
        key, start = parts(i)
        if key not in compiled:
            fn = _jit(chunk, sharding, static_argnums=(2, 3))
            compiled[key] = fn.lower(state, run_configs, start, lengths[i]).compile()
    finite_fn = _jit(_finite_runs, sharding).lower(agent.params(state.agent)).compile()
    compile_time = time.perf_counter() - t

    metrics_path = out / "metrics.csv"
    update_count = sum(lengths[:done_chunks])
    header, old_rows = _read_rows(metrics_path, update_count) if resume else (None, [])
    progress = Progress(num_updates * steps_per_update, num_seeds, quiet or not primary)
    train_start = time.perf_counter()
    with open(metrics_path if primary else os.devnull, "w", newline="") as f:
        writer = csv.writer(f)
        if header is not None:
            writer.writerows([header, *old_rows])
        for i in range(done_chunks, len(lengths)):
            n = lengths[i]
            state, metrics = compiled[parts(i)[0]](state, run_configs)
            update_count += n
            per_seed = _summarise_chunk(to_host(metrics))
            finite = to_host(finite_fn(agent.params(state.agent)))
            _check_finite_runs(per_seed, update_count, finite)
            env_steps = update_count * steps_per_update
            if header is None:
                header = ["seed", "update", "env_steps", *per_seed]
                writer.writerow(header)
            for s in range(num_seeds):
                row = [s, update_count, env_steps]
                for k in header[3:]:
                    v = float(per_seed[k][s])
                    row.append("" if math.isnan(v) else f"{v:.6g}")
                writer.writerow(row)
            f.flush()
            returns = per_seed["episode_return"]
            progress.update(
                env_steps,
                float(np.nanmean(returns)) if np.isfinite(returns).any() else math.nan,
            )
            if mngr is not None and ((i + 1) % checkpoint_every == 0 or i + 1 == len(lengths)):
                checkpoint.save(
                    mngr, i + 1, state, {**meta_base, "chunks": i + 1, "update": update_count}
                )
            if trackers is not None:
                trackers.log(env_steps, per_seed)
            if on_chunk is not None:
                on_chunk(i, state)
    jax.block_until_ready(state)
    if mngr is not None:
        mngr.wait_until_finished()
        mngr.close()
    train_time = time.perf_counter() - train_start
    progress.close()

    # Evaluation: a separate key stream; greedy (mode) and sampled policies.
    t = time.perf_counter()
    params = agent.params(state.agent)

    def _eval(greedy):
        def one(k, p, c):
            act = agent.make_act(c, spec)
            fn = lambda kk, pp, o: act(kk, pp, o, greedy)
            return evaluation.evaluate(k, fn, p, env, env_params, eval_episodes)

        return _jit(over_runs(one), sharding)

    greedy_returns = to_host(_eval(True)(eval_keys, params, run_configs))
    sampled_keys = jax.vmap(jax.random.fold_in, (0, None))(eval_keys, 1)
    sampled_returns = to_host(_eval(False)(sampled_keys, params, run_configs))
    eval_time = time.perf_counter() - t

    from rljax import stats

    greedy_mean = greedy_returns.mean(1)
    solved = evaluation.solved(greedy_mean, spec)
    solved_at = to_host(state.window.solved_at)  # the runner's Carry
    agg = stats.aggregate(greedy_mean, reps=2000, seed=0)
    summary: dict[str, Any] = {
        "agent": agent.name,
        "env": env_name,
        "num_seeds": num_seeds,
        "seed": seed,
        "seed_block": block,
        "devices": devices,
        "backend": jax.default_backend(),
        "total_steps": int(num_updates * steps_per_update),
        "num_updates": num_updates,
        "eval_episodes": eval_episodes,
        "eval_returns": [round(float(x), 4) for x in greedy_mean],
        "eval_returns_sampled": [round(float(x), 4) for x in sampled_returns.mean(1)],
        "solved_threshold": spec.solved_threshold,
        "solved": None if solved is None else [bool(x) for x in solved],
        "solved_count": None if solved is None else int(np.sum(solved)),
        "solved_fraction": None if solved is None else float(np.mean(solved)),
        "episodes_to_solve": [int(x) if x >= 0 else None for x in solved_at],
        **{k: agg[k] for k in ("iqm", "iqm_ci", "mean", "mean_ci", "median", "median_ci")},
        "compile_time_s": round(compile_time, 3),
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "wall_time_s": round(time.perf_counter() - wall_start, 3),
        "steps_per_second": round(
            (num_updates - sum(lengths[:done_chunks]))
            * steps_per_update
            * num_seeds
            / max(train_time, 1e-9),
            1,
        ),
        "versions": versions(),
        **(extra_summary or {}),
    }
    if visuals:
        policy = to_host(params)  # every process takes part in the gather
        if primary:
            try:
                summary["median_seed"] = write_visuals(
                    out, agent, config, env, env_params, spec, policy, greedy_mean, host_eval_keys
                )
            except Exception as e:  # a failed plot must not cost a long run its results
                print(
                    f"curves.png/episode.gif not written: {type(e).__name__}: {e}", file=sys.stderr
                )
    return RunResult(state=state, summary=summary)


def write_visuals(out, agent, config, env, env_params, spec, params, greedy_mean, eval_keys):
    """curves.png (all seeds) and episode.gif (the median seed's greedy policy).

    ``params`` are the runs' policy parameters (leading run axis). Returns the index of the
    median seed. A missing rendering extra skips the GIF with a one-line note on stderr; the
    run's other results are unaffected.
    """
    from rljax.io import plots, render

    plots.plot_curves(
        [(f"{agent.name} ({len(greedy_mean)} seeds)", plots.read_metrics(out / "metrics.csv"))],
        out / "curves.png",
        threshold=spec.solved_threshold,
        title=f"{agent.name} on {spec.name}",
    )
    median_seed = int(np.argsort(greedy_mean)[len(greedy_mean) // 2])
    params = jax.tree.map(lambda x: x[median_seed], params)
    act = agent.make_act(config, spec)
    key = jax.random.fold_in(eval_keys[median_seed], 2)
    states, rewards = render.rollout_states(key, act, params, env, env_params)
    try:
        render.save_gif(states, rewards, env, env_params, out / "episode.gif")
    except render.RenderUnavailable as e:
        print(f"episode.gif skipped: {e}", file=sys.stderr)
    return median_seed


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def agent_names() -> list[str]:
    return list(AGENTS)
