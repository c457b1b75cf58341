"""What a run writes: the metrics table, progress lines, finite checks, the summary's numbers.

Host-side (numpy) helpers shared by every env family's runner (:mod:`rljax.run.experiment`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rljax import envs

RESULT_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "episode.gif")
PACKAGES = ("rljax", "jax", "jaxlib", "flax", "optax", "distrax", "chex", "gymnax", "gymnasium")


class NonFiniteError(RuntimeError):
    """Training produced non-finite parameters or losses."""


def versions() -> dict[str, str]:
    """Python's and the stack's versions ("unknown" for a package not installed)."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def config_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


class RunningRewards:
    """Each seed's Keras running reward (:func:`rljax.envs.running_reward`: EMA 0.05 of its
    completed-episode returns, in order) and the episode count at which it first reached each
    threshold and the env's ``solved`` threshold (None: never).

    Fed either every episode (:meth:`update`, host envs: exact) or each update's in-jit
    metrics (:meth:`update_metrics`, gymnax: the running reward at each update's end, and the
    episode count then; the same when updates complete at most one episode per seed, as in
    Monte-Carlo modes).
    """

    def __init__(self, num_seeds: int, thresholds: Sequence[float], solved: float | None):
        self.ema = np.zeros((num_seeds,), np.float64)
        self.count = np.zeros((num_seeds,), np.int64)
        self.thresholds = sorted({*thresholds, *(() if solved is None else (solved,))})
        self.passed: dict[float, list] = {thr: [None] * num_seeds for thr in self.thresholds}

    def resume(self, count: Any, running: Any) -> None:
        """Continue from a restored state's episode counts and running rewards [S]. Thresholds
        reached before the resume are not known: their first crossing after it is reported."""
        self.count = np.asarray(count, np.int64).copy()
        self.ema = np.asarray(running, np.float64).copy()

    def _check(self, s: int, value: float) -> None:
        for thr in self.thresholds:
            if self.passed[thr][s] is None and value >= thr:
                self.passed[thr][s] = int(self.count[s])

    def update(self, traj: Any) -> None:
        """Fold in a batch's episodes, one by one (``traj`` leaves [S, T, N])."""
        done = np.asarray(traj.done)
        rets = np.asarray(traj.episode_return)
        for s in range(done.shape[0]):
            for r in rets[s][done[s]]:  # time-major, then env: the order episodes ended
                self.ema[s] = envs.RUNNING_ALPHA * r + (1.0 - envs.RUNNING_ALPHA) * self.ema[s]
                self.count[s] += 1
                self._check(s, self.ema[s])

    def update_metrics(self, metrics: dict[str, Any]) -> None:
        """Fold in a chunk's per-update metrics ([S, U]: ``episode_count``,
        ``running_reward``) from :func:`rljax.agents.protocol.episode_metrics`."""
        count = np.asarray(metrics["episode_count"])
        last = np.asarray(metrics["running_reward"], np.float64)
        for u in range(count.shape[1]):
            self.count += count[:, u]
            self.ema = last[:, u]
            for s in np.flatnonzero(count[:, u] > 0):
                self._check(s, last[s, u])

    def summary(self) -> dict[str, Any]:
        return {
            "running_reward": [round(float(x), 4) for x in self.ema],
            "running_reward_passed_at": {
                str(thr): {
                    "episodes": self.passed[thr],
                    "fraction": float(np.mean([p is not None for p in self.passed[thr]])),
                }
                for thr in self.thresholds
            },
        }


def summarise_chunk(metrics: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-seed values of a chunk's metrics ([S, U] arrays -> [S]).

    ``episode_return`` is the mean return of the episodes completed in the chunk (NaN if none),
    ``running_reward`` and ``ema_*`` metrics take their last value, the others their mean over
    the chunk's updates.
    """
    m = {k: np.asarray(v) for k, v in metrics.items()}
    count = m.pop("episode_count").sum(1)
    total = m.pop("episode_return_sum").sum(1)
    out = {
        "episodes": count,
        "episode_return": np.where(count > 0, total / np.maximum(count, 1), np.nan),
    }
    for k, v in m.items():
        last = k.startswith("ema_") or k == "running_reward"
        out[k] = v[:, -1] if last else v.mean(1)
    return out


def check_finite(per_seed: dict[str, np.ndarray], update: int, finite: np.ndarray) -> None:
    """Stop with one line naming the update, seeds and metric if anything is non-finite.

    ``finite`` [S] says whether each run's parameters are all finite.
    """
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


class MetricsTable:
    """``metrics.csv``: one row per seed per chunk (seed, update, env_steps, metrics...).

    With ``resume_at`` the rows of an earlier run up to that update are kept.
    """

    def __init__(self, path: Path | None, resume_at: int | None = None):
        self.header, rows = _read_rows(path, resume_at) if resume_at is not None else (None, [])
        self.file = open(path if path is not None else "/dev/null", "w", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.file)
        if self.header is not None:
            self.writer.writerows([self.header, *rows])

    def write(self, update: int, env_steps: np.ndarray, per_seed: dict[str, np.ndarray]) -> None:
        if self.header is None:
            self.header = ["seed", "update", "env_steps", *per_seed]
            self.writer.writerow(self.header)
        for s in range(len(env_steps)):
            row = [s, update, int(env_steps[s])]
            for k in self.header[3:]:
                v = float(per_seed[k][s])
                row.append("" if math.isnan(v) else f"{v:.6g}")
            self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _read_rows(path: Path, max_update: int) -> tuple[list[str] | None, list[list[str]]]:
    """Header and rows of an existing metrics.csv up to ``max_update`` (for resuming)."""
    if not path.exists():
        return None, []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None, []
    return rows[0], [r for r in rows[1:] if r and int(r[1]) <= max_update]


class Progress:
    """One status line per chunk on stderr: env steps, steps/s, ETA, mean return."""

    def __init__(self, total_steps: int, num_seeds: int, quiet: bool):
        self.total, self.num_seeds, self.quiet = total_steps, num_seeds, quiet
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, steps: int, returns: np.ndarray) -> None:
        if self.quiet:
            return
        mean_return = float(np.nanmean(returns)) if np.isfinite(returns).any() else math.nan
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


# What summary.json's aggregate statistics are computed over.
STATISTICS_OVER = (
    "iqm, mean and median (with 95% percentile-bootstrap CIs) are across seeds of "
    "eval_returns: each seed's mean return over its greedy evaluation episodes "
    "(eval_returns_sampled: the same with sampled actions; not aggregated)"
)


def evaluation_summary(greedy: np.ndarray, sampled: np.ndarray, threshold, solved_at) -> dict:
    """The summary's evaluation fields from greedy and sampled returns [S, E]."""
    from rljax import stats

    greedy_mean = greedy.mean(1)
    solved = None if threshold is None else greedy_mean >= threshold
    agg = stats.across_seeds(greedy_mean, reps=2000, seed=0)
    return {
        "statistics_over": STATISTICS_OVER,
        "eval_returns": [round(float(x), 4) for x in greedy_mean],
        "eval_returns_sampled": [round(float(x), 4) for x in sampled.mean(1)],
        "solved_threshold": threshold,
        "solved": None if solved is None else [bool(x) for x in solved],
        "solved_count": None if solved is None else int(np.sum(solved)),
        "solved_fraction": None if solved is None else float(np.mean(solved)),
        "episodes_to_solve": [int(x) if x >= 0 else None for x in np.asarray(solved_at)],
        **{k: agg[k] for k in ("iqm", "iqm_ci", "mean", "mean_ci", "median", "median_ci")},
        **({"warning": agg["warning"]} if "warning" in agg else {}),
    }


def median_seed(greedy_mean: np.ndarray) -> int:
    """The seed whose greedy mean return is the median (the upper one for an even count)."""
    return int(np.argsort(greedy_mean)[len(greedy_mean) // 2])


def curves_and_median(out: Path, agent, config, spec, params, greedy_mean, suffix: str = ""):
    """Write ``curves.png`` (every seed's training returns, from ``metrics.csv``) and pick the
    median seed for the GIF: ``(seed, its params, its greedy act)``."""
    from rljax.io import plots

    plots.plot_curves(
        [(f"{agent.name} ({len(greedy_mean)} seeds)", plots.read_metrics(out / "metrics.csv"))],
        out / "curves.png",
        threshold=spec.solved_threshold,
        title=f"{agent.name} on {spec.name}{suffix}",
    )
    seed = median_seed(greedy_mean)
    return seed, jax.tree.map(lambda x: x[seed], params), agent.make_act(config, spec)


class Runs:
    """What both env families' runs classes share (:mod:`rljax.run.gymnax`,
    :mod:`rljax.run.host`): ``agent``, ``streams`` and the host copies of results."""

    agent: Any
    streams: Any

    def eval_streams(self):
        """The runs' greedy and sampled evaluation keys [S] (their own streams)."""
        return self.streams.eval_greedy, self.streams.eval_sampled

    def solved_at(self, state) -> np.ndarray:
        """Each run's training episodes to solve (-1: not solved)."""
        from rljax.run import parallel

        return parallel.to_host(state.window.solved_at)

    def host_params(self, state) -> Any:
        """The runs' policy parameters on the host (a collective: every process calls it)."""
        from rljax.run import parallel

        return parallel.to_host(self.agent.params(state.agent))
