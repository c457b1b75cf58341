"""Read a run's ``metrics.csv`` and plot learning curves across seeds (host-side).

``metrics.csv`` is long format, one row per (logging point, seed), header
``seed,update,env_steps,episodes,episode_return,<other metrics...>``. ``episode_return`` is the
mean return of the episodes completed since the previous logging point and is empty when none
completed; ``env_steps`` counts environment steps per seed and is the same for every seed at a
logging point.

Curves (:func:`plot_curves`) follow Agarwal et al. 2021, https://arxiv.org/abs/2108.13264: at
each logging point the IQM (or mean) across seeds with a 95 % percentile-bootstrap band
(:func:`rljax.stats.curve_band`), against environment steps.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rljax import stats

_KEY_COLUMNS = ("seed", "env_steps")


def _to_float(text: str) -> float:
    text = text.strip()
    return math.nan if text == "" else float(text)


def read_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse a run's ``metrics.csv`` into ``[seeds, points]`` arrays.

    Rows may come in any order: they are grouped by ``seed`` (ascending) and, within a seed,
    ordered by ``update`` (or by ``env_steps`` if there is no ``update`` column). Every seed must
    have the same logging points: the same ``update`` sequence, or without an ``update`` column
    the same ``env_steps`` sequence. Where seeds logged at the same updates but after different
    numbers of env steps (Monte-Carlo runs on the Gymnasium bridge), ``env_steps`` is the seeds'
    mean at each point and ``env_steps_per_seed`` [S, P] holds their own counts.

    Args:
      path: the CSV file.

    Returns:
      ``{"seeds": int [S], "env_steps": int [P], "episode_return": float [S, P], ...}``: every
      other column that parses as numbers (``update``, ``episodes``, losses, ...) also as float
      ``[S, P]``. Empty cells become NaN (``episode_return`` is NaN where no episode completed).
      Columns with non-numeric text are left out.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: on a missing ``seed``/``env_steps``/``episode_return`` column, no data rows,
        rows of unequal length, or seeds with different logging points.
    """
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file (expected a header row)")
    header = [h.strip() for h in rows[0]]
    for required in (*_KEY_COLUMNS, "episode_return"):
        if required not in header:
            raise ValueError(f"{path}: no {required!r} column (header: {','.join(header)})")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise ValueError(f"{path}: no data rows")
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {line} has {len(r)} fields, header has {len(header)}")

    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        try:
            columns[name] = np.array([_to_float(r[j]) for r in body], dtype=np.float64)
        except ValueError:
            if name in (*_KEY_COLUMNS, "episode_return", "update"):
                raise ValueError(f"{path}: column {name!r} is not numeric") from None
    for name in _KEY_COLUMNS:
        if not np.all(np.isfinite(columns[name])):
            raise ValueError(f"{path}: column {name!r} has empty or non-finite cells")

    seed_col = columns["seed"]
    order_col = columns.get("update", columns["env_steps"])
    seeds = np.unique(seed_col)
    order = np.lexsort((order_col, seed_col))  # by seed, then by update
    counts = np.array([(seed_col == s).sum() for s in seeds])
    if not np.all(counts == counts[0]):
        raise ValueError(
            f"{path}: seeds have different numbers of rows ({counts.min()} to {counts.max()})"
        )
    num_seeds, num_points = len(seeds), int(counts[0])
    grid = {name: col[order].reshape(num_seeds, num_points) for name, col in columns.items()}
    steps = grid["env_steps"]
    x = steps[0]
    if not np.all(steps == steps[0]):
        # Monte-Carlo runs on the host bridge learn from episodes of different lengths, so
        # their seeds' env_steps differ at the same update: plot against the seeds' mean.
        if "update" not in grid or not np.all(grid["update"] == grid["update"][0]):
            raise ValueError(f"{path}: seeds disagree on env_steps at the same logging point")
        x = np.round(steps.mean(0))

    out: dict[str, np.ndarray] = {
        "seeds": seeds.astype(np.int64),
        "env_steps": x.astype(np.int64),
    }
    if not np.all(steps == steps[0]):
        out["env_steps_per_seed"] = steps.astype(np.int64)
    for name, values in grid.items():
        if name not in _KEY_COLUMNS:
            out[name] = values
    return out


def forward_fill(curves: np.ndarray) -> np.ndarray:
    """Carry each row's last value forward over NaN; leading NaN stay NaN.

    Args:
      curves: ``[S, P]`` float array.

    Returns:
      ``[S, P]`` copy where ``out[s, p]`` is the last non-NaN ``curves[s, q]`` with ``q <= p``.
    """
    a = np.asarray(curves, dtype=np.float64)
    valid = ~np.isnan(a)
    last = np.where(valid, np.arange(a.shape[1])[None, :], 0)
    np.maximum.accumulate(last, axis=1, out=last)
    filled = np.take_along_axis(a, last, axis=1)
    started = np.maximum.accumulate(valid, axis=1)
    return np.where(started, filled, np.nan)


def curve_statistic(
    curves: np.ndarray,
    *,
    statistic: str = "iqm",
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Statistic across seeds at each point, over the seeds that have a value there.

    Rule for missing returns: each seed's curve is forward-filled (:func:`forward_fill`: the
    last logged return holds until new episodes complete); before a seed's first completed
    episode it has no value and is left out, so ``estimate[p]`` and its bootstrap band use only
    the seeds with a value at ``p`` (the band comes from :func:`rljax.stats.curve_band`, applied
    to each run of consecutive points that share the same set of seeds). Points where no seed has
    a value are NaN.

    Args:
      curves: ``[S, P]`` returns with NaN where missing.
      statistic: ``"iqm"``, ``"mean"`` or ``"median"``.
      reps: bootstrap resamples.
      confidence: band coverage.
      seed: bootstrap seed.

    Returns:
      ``(estimate, low, high, count)``, each ``[P]``: the statistic, its band, and how many
      seeds had a value.
    """
    filled = forward_fill(curves)
    has = ~np.isnan(filled)
    num_points = filled.shape[1]
    estimate, low, high = (np.full(num_points, np.nan) for _ in range(3))
    count = has.sum(axis=0)
    start = 0
    while start < num_points:  # runs of points with the same seeds (at most S + 1 of them)
        stop = start + 1
        while stop < num_points and np.array_equal(has[:, stop], has[:, start]):
            stop += 1
        rows = has[:, start]
        if rows.any():
            band = stats.curve_band(
                filled[rows, start:stop],
                statistic=statistic,
                reps=reps,
                confidence=confidence,
                seed=seed,
            )
            estimate[start:stop], low[start:stop], high[start:stop] = band
        start = stop
    return estimate, low, high, count


def plot_curves(
    runs: Sequence[tuple[str, dict[str, Any]]],
    out_png: str | os.PathLike,
    *,
    threshold: float | None = None,
    title: str | None = None,
    statistic: str = "iqm",
    seed_lines: bool | None = None,
    reps: int = 1000,
) -> Path:
    """Plot episode return against environment steps for one or more runs into a PNG.

    For each run: the IQM (or ``statistic``) across seeds as a solid line with its 95 % bootstrap
    band (none below :data:`rljax.stats.MIN_SEEDS_FOR_CI` seeds, where it is no CI; NaN
    handling as in :func:`curve_statistic`: forward-fill each seed, then use the seeds that
    have a value at each point); optionally each seed's forward-filled curve as a faint thin
    line in the run's colour. A dashed horizontal line marks ``threshold``.

    Args:
      runs: ``(label, metrics)`` pairs, ``metrics`` as from :func:`read_metrics`.
      out_png: the PNG to write (its folder must exist). About 1320 x 715 pixels.
      threshold: the environment's solved return, drawn dashed; ``None`` draws none.
      title: figure title.
      statistic: ``"iqm"`` (default), ``"mean"`` or ``"median"`` across seeds.
      seed_lines: draw per-seed curves; default only when a single run is plotted.
      reps: bootstrap resamples for the bands.

    Returns:
      The path written.

    Raises:
      ValueError: if ``runs`` is empty or a run lacks ``env_steps``/``episode_return``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    if seed_lines is None:
        seed_lines = len(runs) == 1
    names = {"iqm": "IQM", "mean": "mean", "median": "median"}
    if statistic not in names:
        raise ValueError(f"unknown statistic {statistic!r}; use one of {sorted(names)}")

    fig, ax = plt.subplots(figsize=(12, 6.5), dpi=110)
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (label, metrics) in enumerate(runs):
            for key in ("env_steps", "episode_return"):
                if key not in metrics:
                    raise ValueError(f"run {label!r} has no {key!r}")
            color = colors[i % len(colors)]
            x = np.asarray(metrics["env_steps"], dtype=np.float64)
            curves = np.asarray(metrics["episode_return"], dtype=np.float64)
            if seed_lines:  # fainter the more seeds (and runs) overlap
                alpha = min(0.3, 4.0 / (curves.shape[0] * len(runs)))
                for row in forward_fill(curves):
                    ax.plot(x, row, color=color, lw=0.5, alpha=max(alpha, 0.02), zorder=1)
            est, low, high, _ = curve_statistic(curves, statistic=statistic, reps=reps)
            n = curves.shape[0]
            band = n >= stats.MIN_SEEDS_FOR_CI  # fewer: a bootstrap band is no CI (stats)
            if band:
                ax.fill_between(x, low, high, color=color, alpha=0.3, lw=0, zorder=2)
                for edge in (low, high):
                    ax.plot(x, edge, color=color, lw=0.7, alpha=0.8, zorder=2)
            ci = "95% CI" if band else f"no CI (fewer than {stats.MIN_SEEDS_FOR_CI} seeds)"
            ax.plot(
                x,
                est,
                color=color,
                lw=2.2,
                zorder=3,
                label=f"{label}: {names[statistic]} of {n} seeds, {ci}",
            )
        if threshold is not None:
            ax.axhline(
                threshold, color="0.25", ls="--", lw=1.3, zorder=4, label=f"solved ({threshold:g})"
            )
        ax.set_xlabel("environment steps (per seed)", fontsize=13)
        ax.set_ylabel("episode return", fontsize=13)
        ax.tick_params(labelsize=11)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
        if title:
            ax.set_title(title, fontsize=14)
        ax.legend(loc="best", fontsize=11, framealpha=0.9)
        fig.tight_layout()
        out = Path(out_png)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


__all__ = ["curve_statistic", "forward_fill", "plot_curves", "read_metrics"]
