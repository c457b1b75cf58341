"""Compare finished runs: overlay their learning curves and test their final scores.

    python experiments/compare.py DIR_A DIR_B [DIR_C ...] [--out FIGURE.png]

Each DIR is a results folder written by a training run (``summary.json`` and ``metrics.csv``;
``config.json`` optional). The script

* writes one PNG overlaying the runs' learning curves (IQM across seeds with 95 % bootstrap
  bands, ``rljax.io.plots.plot_curves``): ``--out``, by default
  ``compare_A_vs_B.png`` next to the first run's folder (in its parent folder);
* prints a table of each run's greedy evaluation returns (``summary.json["eval_returns"]``, one
  score per seed): mean, median and IQM with 95 % percentile-bootstrap CIs
  (``rljax.stats.aggregate``);
* prints, for every pair of runs, the probability of improvement P(A > B) with its bootstrap CI
  (``rljax.stats.probability_of_improvement(_ci)``; Agarwal et al. 2021,
  https://arxiv.org/abs/2108.13264).

Bad input (a folder that is missing or lacks ``summary.json`` / ``metrics.csv``, unreadable
files, missing or non-finite ``eval_returns``) is refused with one line on stderr and exit
status 2, before anything is written. Runs on DIFFERENT environments are refused the same way:
their returns are on different scales, so neither the overlay nor P(A > B) would mean anything.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import cli  # experiments/cli.py, next to this script
import numpy as np

from rljax import stats
from rljax.io import plots

# Bad command line or results folder: reported in one line, exit status 2.
InputError = cli.UsageError


class Run(NamedTuple):
    label: str
    path: Path
    env: str
    agent: str
    eval_returns: np.ndarray
    solved: list | None
    metrics: dict[str, np.ndarray]
    threshold: float | None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _threshold(env: str, summary: dict[str, Any]) -> float | None:
    if summary.get("solved_threshold") is not None:
        return float(summary["solved_threshold"])
    from rljax import envs  # imports jax and gymnax: only when the summary does not say

    return envs.ENVS.get(env)


def load_run(directory: str) -> Run:
    """Read and check one results folder."""
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"{directory}: no such results folder")
    for name in ("summary.json", "metrics.csv"):
        if not (path / name).is_file():
            raise InputError(f"{directory}: no {name} (is this a finished run's results folder?)")
    summary = _load_json(path / "summary.json")
    config = _load_json(path / "config.json") if (path / "config.json").is_file() else {}
    env = summary.get("env", config.get("env"))
    if not isinstance(env, str):
        raise InputError(f"{path / 'summary.json'}: no 'env'")
    raw = summary.get("eval_returns")
    try:
        scores = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        scores = np.empty(0)
    if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
        raise InputError(
            f"{path / 'summary.json'}: 'eval_returns' must be a non-empty list of finite numbers"
        )
    try:
        metrics = plots.read_metrics(path / "metrics.csv")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(str(e)) from None
    return Run(
        label=path.resolve().name or str(path),
        path=path,
        env=env,
        agent=str(summary.get("agent", config.get("agent", "?"))),
        eval_returns=scores,
        solved=summary.get("solved"),
        metrics=metrics,
        threshold=_threshold(env, summary),
    )


def _unique_labels(runs: list[Run]) -> list[Run]:
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    return [r._replace(label=str(r.path)) if seen[r.label] > 1 else r for r in runs]


def _ci(value: float, ci: list[float] | None) -> str:
    return f"{value:9.2f}" + ("" if ci is None else f" [{ci[0]:8.2f}, {ci[1]:8.2f}]")


def table(runs: list[Run], *, reps: int = 2000, seed: int = 0) -> str:
    """The statistics table and the pairwise probabilities of improvement, as text."""
    width = max(len("run"), *(len(r.label) for r in runs))
    head = (
        f"{'run':<{width}}  {'agent':<8} {'seeds':>5}  "
        f"{'mean [95% CI]':>30}  {'median [95% CI]':>30}  {'IQM [95% CI]':>30}  solved"
    )
    lines = [
        f"Greedy evaluation return per seed ({runs[0].env}); 95% percentile-bootstrap CIs, "
        f"{reps} resamples",
        head,
        "-" * len(head),
    ]
    for r in runs:
        agg = stats.across_seeds(r.eval_returns, reps=reps, seed=seed)
        if isinstance(r.solved, list) and r.solved:
            solved = f"{sum(bool(s) for s in r.solved)}/{len(r.solved)}"
        else:
            solved = "n/a"
        lines.append(
            f"{r.label:<{width}}  {r.agent:<8} {r.eval_returns.size:>5}  "
            f"{_ci(agg['mean'], agg['mean_ci']):>30}  {_ci(agg['median'], agg['median_ci']):>30}  "
            f"{_ci(agg['iqm'], agg['iqm_ci']):>30}  {solved}"
        )
    if len(runs) > 1:
        lines += ["", "Probability of improvement, P(X > Y) + P(X = Y)/2 over pairs of seeds:"]
        for i, a in enumerate(runs):
            for b in runs[i + 1 :]:
                p = stats.probability_of_improvement(a.eval_returns, b.eval_returns)
                lo, hi = stats.probability_of_improvement_ci(
                    a.eval_returns, b.eval_returns, reps=reps, seed=seed
                )
                ci = f"  [95% CI {lo:.3f}, {hi:.3f}]"
                if min(a.eval_returns.size, b.eval_returns.size) < stats.MIN_SEEDS_FOR_CI:
                    ci = ""
                lines.append(f"  P({a.label} > {b.label}) = {p:.3f}{ci}")
    few = [r for r in runs if stats.few_seeds_warning(r.eval_returns.size)]
    for r in few:
        lines.append(f"Warning: {r.label}: {stats.few_seeds_warning(r.eval_returns.size)}.")
    return "\n".join(lines)


def default_out(runs: list[Run]) -> Path:
    """``compare_A_vs_B.png`` beside the first run's folder (never the current folder)."""
    name = "_vs_".join(r.label.replace("/", "_") for r in runs)
    return runs[0].path.resolve().parent / f"compare_{name}.png"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    parser = cli.Parser(prog="compare.py", description=__doc__)
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="results folders of finished runs")
    parser.add_argument(
        "--out",
        default=None,
        help="PNG to write (default: compare_A_vs_B.png next to the first run's folder)",
    )
    parser.add_argument(
        "--statistic", choices=("iqm", "mean"), default="iqm", help="curve statistic across seeds"
    )
    parser.add_argument("--reps", type=cli.count, default=2000, help="bootstrap resamples")
    try:
        args = parser.parse_args(argv)
        if args.reps < 1:
            raise InputError(f"--reps must be a positive integer; got {args.reps}")
        runs = _unique_labels([load_run(d) for d in args.dirs])
        out = Path(args.out) if args.out else default_out(runs)
        if not out.parent.is_dir():
            raise InputError(f"--out {args.out}: folder {out.parent} does not exist")
        env_names = sorted({r.env for r in runs})
        if len(env_names) > 1:
            raise InputError(
                f"runs are on different environments ({', '.join(env_names)}); "
                "compare runs of one environment"
            )
    except InputError as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2

    print(table(runs, reps=args.reps))
    threshold = runs[0].threshold
    plots.plot_curves(
        [(r.label, r.metrics) for r in runs],
        out,
        threshold=None if threshold is None or math.isnan(threshold) else threshold,
        title=f"{runs[0].env}: " + " vs ".join(r.label for r in runs),
        statistic=args.statistic,
        reps=min(args.reps, 1000),
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
