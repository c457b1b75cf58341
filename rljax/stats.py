"""Across-seed statistics for final scores and learning curves (host-side, numpy + scipy).

Implements the aggregate metrics and interval estimates recommended by Agarwal et al. 2021,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice",
https://arxiv.org/abs/2108.13264, following the definitions of its reference library
``google-research/rliable`` (``rliable/metrics.py``, ``rliable/library.py``), which is not
a dependency (rliable 1.2.0 fails to import alongside pandas 3).

Score layouts:

* a 1-D array ``[runs]``: one score per independent run (seed) of a single task;
* a 2-D matrix ``[runs, tasks]``: ``scores[n, m]`` is run ``n`` on task ``m``, scores already
  normalised per task (e.g. to ``[0, 1]``) so that they can be pooled across tasks.

Point estimates (for a matrix, "all entries" means all ``runs * tasks`` scores pooled):

* ``mean``: mean of all entries (= mean of the per-task means, the runs being balanced).
* ``median``: 1-D, the median over runs; 2-D, the median of the per-task means (rliable's
  ``aggregate_median``). For a ``[runs, 1]`` matrix the latter is the task mean, not the median
  over runs; pass a 1-D array for the median over runs of one task.
* ``iqm``: interquartile mean, the 25 % trimmed mean of all entries,
  ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: sort the N entries, drop
  ``k = floor(0.25 N)`` from each end, average the remaining ``N - 2k``.
* ``optimality_gap``: ``gamma - mean(min(scores, gamma))`` over all entries.
* ``probability_of_improvement``: per task, ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs
  (the Mann-Whitney U statistic of X divided by ``n_x * n_y``), averaged over tasks.

Bootstrap (percentile method, as rliable's default ``method='percentile'``). With
``rng = np.random.default_rng(seed)``, the resampling indices are drawn in ONE call:

* 1-D ``[n]``:         ``idx = rng.integers(0, n, size=(reps, n))``;        replicate ``r`` is
  ``scores[idx[r]]``.
* 2-D ``[n, T]``:      ``idx = rng.integers(0, n, size=(reps, n, T))``;     replicate ``r`` is
  ``scores[idx[r], np.arange(T)]``, i.e. column ``t`` resampled with its own indices
  ``idx[r, :, t]`` (stratified bootstrap: runs resampled independently within each task).
* learning curves ``[n, P]``: the 1-D draw ``(reps, n)``; whole curves (rows) are resampled, so
  every point uses the same runs in a replicate.
* probability of improvement: the draw for ``x`` first, then, from the same generator, the draw
  for ``y`` (each of the 1-D or 2-D form above, with its own run count).

The statistic of each replicate gives ``theta*_1..theta*_reps``; the interval is
``np.quantile(theta*, [(1 - c) / 2, (1 + c) / 2])`` with numpy's default ``method='linear'``
(equivalently ``np.percentile`` at ``100 (1 - c) / 2`` and ``100 (1 + c) / 2``). Numbers will
differ from rliable's for the same seed (rliable draws through ``arch`` with a
``RandomState``); the method is the same.

All functions reject NaN and infinite scores with a ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.stats

StatName = Literal["mean", "median", "iqm"]
Seed = int | np.random.Generator | None

_CURVE_CHUNK_ELEMENTS = 1 << 22  # ~32 MiB of float64 per chunk of resampled curves


# --------------------------------------------------------------------------- validation


def _as_scores(scores: object, name: str = "scores", *, max_ndim: int = 2) -> np.ndarray:
    """Converts to a float64 array of 1..max_ndim dims, non-empty and finite."""
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim < 1 or a.ndim > max_ndim:
        layouts = "[runs]" if max_ndim == 1 else "[runs] or [runs, tasks]"
        raise ValueError(f"{name} must be {layouts}; got shape {a.shape}")
    if a.size == 0 or a.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); need at least one run")
    if not np.all(np.isfinite(a)):
        n_nan = int(np.isnan(a).sum())
        n_inf = int(np.isinf(a).sum())
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s); "
            "drop or fix failed runs before aggregating"
        )
    return a


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    return c


def _check_reps(reps: int) -> int:
    if int(reps) != reps or reps < 1:
        raise ValueError(f"reps must be a positive integer; got {reps}")
    return int(reps)


def _check_gamma(gamma: float) -> float:
    g = float(gamma)
    if not math.isfinite(g):
        raise ValueError(f"gamma must be finite; got {gamma}")
    return g


def _quantiles(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple:
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    lo, hi = np.quantile(samples, q, axis=axis, method="linear")
    return lo, hi


# ------------------------------------------------------------------------- point estimates


def mean(scores: np.ndarray) -> float:
    """Mean score over all entries.

    ``mean = (1 / N) sum_i x_i`` over the N runs (1-D) or the ``runs * tasks`` entries (2-D, the
    same as the mean of per-task means since every task has the same number of runs).
    Agarwal et al. 2021, https://arxiv.org/abs/2108.13264 (rliable ``aggregate_mean``).

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores.

    Returns:
        The mean as a Python float.

    Raises:
        ValueError: if ``scores`` is empty, has more than two dims, or holds NaN/inf.
    """
    return float(np.mean(_as_scores(scores)))


def median(scores: np.ndarray) -> float:
    """Median score: over runs (1-D) or of the per-task mean scores (2-D).

    1-D: ``median_i x_i``. 2-D ``[runs, tasks]``: ``median_m (1 / n) sum_i x_{i,m}``, as
    rliable's ``aggregate_median`` (Agarwal et al. 2021, https://arxiv.org/abs/2108.13264).
    For a single-column matrix this is that task's mean. Takes and rejects ``scores`` as
    :func:`mean` does; returns a Python float.
    """
    a = _as_scores(scores)
    return float(np.median(a) if a.ndim == 1 else np.median(a.mean(axis=0)))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean (IQM): the 25 % trimmed mean over all entries.

    ``IQM = (1 / (N - 2k)) sum_{j=k}^{N-k-1} x_(j)`` with ``x_(0) <= ... <= x_(N-1)`` the sorted
    entries and ``k = floor(0.25 N)``; this is ``scipy.stats.trim_mean(scores, 0.25, axis=None)``
    (rliable ``aggregate_iqm``; Agarwal et al. 2021, https://arxiv.org/abs/2108.13264). For N
    not divisible by 4 slightly more than half the entries are kept (N = 10 keeps 6).

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores; a matrix is pooled.

    Returns:
        The IQM as a Python float.

    Raises:
        ValueError: if ``scores`` is empty, has more than two dims, or holds NaN/inf.
    """
    return float(scipy.stats.trim_mean(_as_scores(scores), 0.25, axis=None))


def optimality_gap(scores: np.ndarray, gamma: float) -> float:
    """Optimality gap: how far scores fall short of a target ``gamma``.

    ``OG = gamma - (1 / N) sum_i min(x_i, gamma)`` over all entries (rliable
    ``aggregate_optimality_gap``; Agarwal et al. 2021, https://arxiv.org/abs/2108.13264).
    Lower is better; scores above ``gamma`` earn no credit.

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores.
        gamma: the target score (1.0 for scores normalised to ``[0, 1]``).

    Returns:
        The optimality gap as a Python float (>= 0).

    Raises:
        ValueError: if ``scores`` is empty, has more than two dims, holds NaN/inf, or
            ``gamma`` is not finite.
    """
    g = _check_gamma(gamma)
    return float(g - np.mean(np.minimum(_as_scores(scores), g)))


# Batched versions: ``batch`` has shape [reps, *scores.shape]; they return [reps].


def _mean_b(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(batch.shape[0], -1).mean(axis=1)


def _median_b(batch: np.ndarray) -> np.ndarray:
    if batch.ndim == 2:
        return np.median(batch, axis=1)
    return np.median(batch.mean(axis=1), axis=1)


def _iqm_b(batch: np.ndarray) -> np.ndarray:
    return scipy.stats.trim_mean(batch.reshape(batch.shape[0], -1), 0.25, axis=1)


def _og_b(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda batch: gamma - _mean_b(np.minimum(batch, gamma))


_BATCHED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": _mean_b,
    "median": _median_b,
    "iqm": _iqm_b,
}
_BY_FUNCTION = ((mean, "mean"), (median, "median"), (iqm, "iqm"))


# ------------------------------------------------------------------------------- bootstrap


def _draw_indices(rng: np.random.Generator, shape: tuple[int, ...], reps: int) -> np.ndarray:
    """The documented draw: (reps, n) for 1-D scores, (reps, n, T) for a [n, T] matrix."""
    return rng.integers(0, shape[0], size=(reps, *shape))


def _resample(scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Applies indices from :func:`_draw_indices`: [reps, n] or stratified [reps, n, T]."""
    if scores.ndim == 1:
        return scores[idx]
    return scores[idx, np.arange(scores.shape[1])]


def _batched_statistic(
    statistic: StatName | Callable[[np.ndarray], float], vectorized: bool
) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(statistic, str):
        if statistic not in _BATCHED:
            raise ValueError(
                f"unknown statistic {statistic!r}; use one of {sorted(_BATCHED)} or a callable"
            )
        return _BATCHED[statistic]
    for function, name in _BY_FUNCTION:
        if statistic is function:
            return _BATCHED[name]
    if not callable(statistic):
        raise TypeError(f"statistic must be a name or a callable; got {type(statistic)}")
    if vectorized:
        return lambda batch: np.asarray(statistic(batch), dtype=np.float64)
    return lambda batch: np.fromiter(
        (statistic(sample) for sample in batch), dtype=np.float64, count=batch.shape[0]
    )


def bootstrap_replicates(
    scores: np.ndarray,
    statistic: StatName | Callable[[np.ndarray], float],
    *,
    reps: int = 2000,
    seed: Seed = 0,
    vectorized: bool = False,
) -> np.ndarray:
    """Bootstrap replicates ``theta*_r = statistic(resample_r(scores))``, r = 1..reps.

    Resampling as in the module docstring (plain for 1-D, stratified per task for 2-D;
    Agarwal et al. 2021, https://arxiv.org/abs/2108.13264, section 4).

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores.
        statistic: ``"mean"``, ``"median"``, ``"iqm"`` (or the functions :func:`mean`,
            :func:`median`, :func:`iqm`), all evaluated vectorised; or any callable mapping one
            resample (same shape as ``scores``) to a float, evaluated in a Python loop unless
            ``vectorized=True``, in which case it is called once on the ``[reps, *scores.shape]``
            batch and must return ``[reps]``.
        reps: number of bootstrap resamples.
        seed: seed (or Generator) for ``np.random.default_rng``.
        vectorized: see ``statistic``.

    Returns:
        ``[reps]`` float64 array of replicated statistics.

    Raises:
        ValueError: on invalid scores (empty, NaN, inf, > 2 dims), reps or statistic name.
    """
    a = _as_scores(scores)
    reps = _check_reps(reps)
    fn = _batched_statistic(statistic, vectorized)
    idx = _draw_indices(np.random.default_rng(seed), a.shape, reps)
    out = np.asarray(fn(_resample(a, idx)), dtype=np.float64)
    if out.shape != (reps,):
        raise ValueError(f"vectorised statistic returned shape {out.shape}, expected ({reps},)")
    return out


def bootstrap_ci(
    scores: np.ndarray,
    statistic: StatName | Callable[[np.ndarray], float],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic of the scores.

    ``CI = [Q((1 - c) / 2), Q((1 + c) / 2)]`` where ``Q`` is the empirical quantile (numpy's
    default ``'linear'`` interpolation) of the replicates ``theta*_1..theta*_reps``. For a
    ``[runs, tasks]`` matrix the resampling is stratified: runs are drawn with replacement
    independently within each task, as rliable's ``StratifiedBootstrap`` (Agarwal et al. 2021,
    https://arxiv.org/abs/2108.13264). Index draws are specified in the module docstring, so a
    given ``seed`` is reproducible by hand.

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores.
        statistic: as in :func:`bootstrap_replicates`.
        reps: number of bootstrap resamples (2000-10000 is fast; rliable uses 50000).
        confidence: nominal coverage ``c`` in (0, 1).
        seed: seed (or Generator) for ``np.random.default_rng``.
        vectorized: as in :func:`bootstrap_replicates`.

    Returns:
        ``(low, high)`` as Python floats.

    Raises:
        ValueError: on invalid scores, reps, confidence or statistic name.
    """
    c = _check_confidence(confidence)
    theta = bootstrap_replicates(scores, statistic, reps=reps, seed=seed, vectorized=vectorized)
    lo, hi = _quantiles(theta, c)
    return float(lo), float(hi)


def aggregate(
    scores: np.ndarray,
    *,
    gamma: float | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> dict[str, float | list[float]]:
    """Point estimates and percentile-bootstrap CIs of mean, median, IQM (and optimality gap).

    All intervals come from the same resamples (one index draw, as documented in the module
    docstring), so for an integer seed each interval equals ``bootstrap_ci(scores, name,
    reps=reps, confidence=confidence, seed=seed)``. Agarwal et al. 2021,
    https://arxiv.org/abs/2108.13264.

    Args:
        scores: ``[runs]`` or ``[runs, tasks]`` finite scores.
        gamma: target for the optimality gap; the gap keys are present only when given.
        reps: number of bootstrap resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed (or Generator) for ``np.random.default_rng``.

    Returns:
        JSON-serialisable dict: ``"mean"``, ``"median"``, ``"iqm"`` (floats) and
        ``"mean_ci"``, ``"median_ci"``, ``"iqm_ci"`` (``[low, high]`` lists of floats), plus
        ``"optimality_gap"`` and ``"optimality_gap_ci"`` when ``gamma`` is given.

    Raises:
        ValueError: if scores hold NaN/inf, are empty or have more than two dims, or on an
            invalid ``gamma``, ``reps`` or ``confidence``.
    """
    a = _as_scores(scores)
    reps = _check_reps(reps)
    c = _check_confidence(confidence)
    stats = {
        "mean": (mean, _mean_b),
        "median": (median, _median_b),
        "iqm": (iqm, _iqm_b),
    }
    if gamma is not None:
        g = _check_gamma(gamma)
        stats["optimality_gap"] = (lambda s: optimality_gap(s, g), _og_b(g))
    batch = _resample(a, _draw_indices(np.random.default_rng(seed), a.shape, reps))
    out: dict[str, float | list[float]] = {}
    for name, (point, batched) in stats.items():
        lo, hi = _quantiles(batched(batch), c)
        out[name] = float(point(a))
        out[f"{name}_ci"] = [float(lo), float(hi)]
    return out


# ---------------------------------------------------------------- probability of improvement


def _as_pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Validates x, y and returns them as [runs, tasks] matrices with equal task counts."""
    a, b = _as_scores(x, "x"), _as_scores(y, "y")
    if a.ndim != b.ndim:
        raise ValueError(f"x and y must both be 1-D or both 2-D; got {a.shape} and {b.shape}")
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same number of tasks; got {a.shape}, {b.shape}")
    return a, b


def _poi_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) averaged over tasks, for x [..., n, T], y [..., m, T] -> [...].

    Via average ranks of the pooled sample: U_x = sum(ranks of x) - n (n + 1) / 2.
    """
    n, m = x.shape[-2], y.shape[-2]
    ranks = scipy.stats.rankdata(np.concatenate([x, y], axis=-2), method="average", axis=-2)
    u_x = ranks[..., :n, :].sum(axis=-2) - n * (n + 1) / 2.0
    return (u_x / (n * m)).mean(axis=-1)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Probability that a run of algorithm X scores higher than a run of algorithm Y.

    Per task ``m``: ``P(X_m > Y_m) = (1 / (n m')) sum_i sum_j S(x_{i,m}, y_{j,m})`` with
    ``S(a, b) = 1`` if ``a > b``, ``1/2`` if ``a = b``, ``0`` otherwise, i.e. the Mann-Whitney U
    statistic of X over ``n * m'`` (``scipy.stats.mannwhitneyu(x, y).statistic / (n * m')``);
    for a matrix the per-task values are averaged over tasks (rliable
    ``probability_of_improvement``; Agarwal et al. 2021, https://arxiv.org/abs/2108.13264).
    ``P(X > Y) + P(Y > X) = 1``.

    Args:
        x: ``[runs_x]`` or ``[runs_x, tasks]`` finite scores of algorithm X.
        y: ``[runs_y]`` or ``[runs_y, tasks]`` finite scores of algorithm Y (same number of
            tasks; the run counts may differ).

    Returns:
        The probability of improvement as a Python float in [0, 1].

    Raises:
        ValueError: on invalid or mismatched inputs.
    """
    a, b = _as_pair(x, y)
    return float(_poi_batched(a, b))


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`probability_of_improvement`.

    Runs of ``x`` and of ``y`` are resampled independently (and, for matrices, independently
    within each task), as rliable's ``StratifiedIndependentBootstrap`` (Agarwal et al. 2021,
    https://arxiv.org/abs/2108.13264). With ``rng = np.random.default_rng(seed)`` the indices
    for ``x`` are drawn first, then those for ``y`` (shapes as in the module docstring).
    Interval: ``np.quantile`` of the replicates at ``(1 - c) / 2`` and ``(1 + c) / 2``.

    Args:
        x: ``[runs_x]`` or ``[runs_x, tasks]`` finite scores of algorithm X.
        y: ``[runs_y]`` or ``[runs_y, tasks]`` finite scores of algorithm Y.
        reps: number of bootstrap resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed (or Generator) for ``np.random.default_rng``.

    Returns:
        ``(low, high)`` as Python floats.

    Raises:
        ValueError: on invalid or mismatched inputs, reps or confidence.
    """
    reps = _check_reps(reps)
    c = _check_confidence(confidence)
    a, b = _as_pair(x, y)
    if np.ndim(x) == 1:  # the documented 1-D draw, (reps, runs)
        a, b = a[:, 0], b[:, 0]
    rng = np.random.default_rng(seed)
    idx_x = _draw_indices(rng, a.shape, reps)
    idx_y = _draw_indices(rng, b.shape, reps)
    bx, by = _resample(a, idx_x), _resample(b, idx_y)
    if a.ndim == 1:
        bx, by = bx[..., None], by[..., None]
    lo, hi = _quantiles(_poi_batched(bx, by), c)
    return float(lo), float(hi)


# ------------------------------------------------------------------------ learning curves


class CurveBand(NamedTuple):
    """Per-point statistic of learning curves and its bootstrap band, each ``[points]``."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


_CURVE_STATS: dict[str, Callable[..., np.ndarray]] = {
    "mean": lambda a, axis: np.mean(a, axis=axis),
    "median": lambda a, axis: np.median(a, axis=axis),
    "iqm": lambda a, axis: scipy.stats.trim_mean(a, 0.25, axis=axis),
}


def curve_band(
    curves: np.ndarray,
    *,
    statistic: Literal["iqm", "mean", "median"] = "iqm",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> CurveBand:
    """Statistic across runs at each point of the learning curves, with a bootstrap band.

    ``estimate[p] = statistic(curves[:, p])``; the band is the pointwise percentile bootstrap
    interval ``[Q((1 - c) / 2), Q((1 + c) / 2)]`` of the replicates, where each replicate
    resamples whole curves (runs) with replacement: ``idx = rng.integers(0, n, size=(reps, n))``
    and replicate ``r`` is ``curves[idx[r]]``. Column ``p`` of the band therefore equals
    ``bootstrap_ci(curves[:, p], statistic, reps=reps, confidence=confidence, seed=seed)``.
    Sample-efficiency curves with IQM and 95 % bands follow Agarwal et al. 2021,
    https://arxiv.org/abs/2108.13264 (rliable ``plot_sample_efficiency_curve``). Vectorised over
    points, in chunks bounded to about 32 MiB.

    Args:
        curves: ``[runs, points]`` finite scores (e.g. evaluation returns at fixed env steps).
        statistic: ``"iqm"`` (default), ``"mean"`` or ``"median"`` across runs.
        reps: number of bootstrap resamples.
        confidence: nominal pointwise coverage in (0, 1).
        seed: seed (or Generator) for ``np.random.default_rng``.

    Returns:
        ``CurveBand(estimate, low, high)``, three float64 arrays of shape ``[points]``.

    Raises:
        ValueError: on curves that are not a non-empty finite 2-D array, or on an invalid
            statistic, reps or confidence.
    """
    a = _as_scores(curves, "curves")
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"curves must be [runs, points]; got shape {a.shape}")
    if statistic not in _CURVE_STATS:
        raise ValueError(f"unknown statistic {statistic!r}; use one of {sorted(_CURVE_STATS)}")
    reps = _check_reps(reps)
    c = _check_confidence(confidence)
    fn = _CURVE_STATS[statistic]
    n, points = a.shape
    idx = _draw_indices(np.random.default_rng(seed), (n,), reps)
    low = np.empty(points)
    high = np.empty(points)
    chunk = max(1, _CURVE_CHUNK_ELEMENTS // (reps * n))
    for start in range(0, points, chunk):
        sl = slice(start, min(start + chunk, points))
        theta = fn(a[:, sl][idx], axis=1)  # [reps, n, k] -> [reps, k]
        low[sl], high[sl] = _quantiles(theta, c, axis=0)
    return CurveBand(np.asarray(fn(a, axis=0), dtype=np.float64), low, high)


__all__ = [
    "CurveBand",
    "aggregate",
    "bootstrap_ci",
    "bootstrap_replicates",
    "curve_band",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "probability_of_improvement",
    "probability_of_improvement_ci",
]


MIN_SEEDS_FOR_CI = 5


def few_seeds_warning(num_seeds: int) -> str | None:
    """A warning for intervals over fewer than :data:`MIN_SEEDS_FOR_CI` seeds, else None.

    With so few seeds a percentile bootstrap interval is not a confidence interval (with 2
    seeds the 95% interval of the mean is just [min, max]).
    """
    if num_seeds >= MIN_SEEDS_FOR_CI:
        return None
    return (
        f"only {num_seeds} seed(s): confidence intervals need at least {MIN_SEEDS_FOR_CI} "
        "seeds (with 2, a bootstrap interval is just [min, max]), so they are left out"
    )


def across_seeds(scores: np.ndarray, *, reps: int = 2000, seed: Seed = 0) -> dict[str, Any]:
    """Mean, median and IQM of one score per seed, with 95% CIs: :func:`aggregate`'s keys,
    except that below :data:`MIN_SEEDS_FOR_CI` seeds each ``*_ci`` is None and a
    ``"warning"`` key says why."""
    a = _as_scores(scores)
    agg = aggregate(a, reps=reps, seed=seed)
    warning = few_seeds_warning(a.shape[0])
    if warning is None:
        return agg
    return {**{k: (None if k.endswith("_ci") else v) for k, v in agg.items()}, "warning": warning}
