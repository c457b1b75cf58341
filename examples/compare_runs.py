"""Load two results folders, plot their learning curves against each other, compare scores.

What it shows: reading what ``experiments/train.py`` writes, with rljax's host-side helpers.
``metrics.csv`` (one row per seed per logging point) is read into ``[seeds, points]`` arrays by
``rljax.io.plots.read_metrics`` and both runs are drawn into one PNG by
``rljax.io.plots.plot_curves`` (IQM across seeds with a 95% bootstrap band). Each run's
``summary.json`` holds one greedy evaluation return per seed (``eval_returns``); this script
prints their mean, median and IQM with 95% bootstrap CIs (``rljax.stats.aggregate``) and the
probability that a seed of run A beats a seed of run B (``rljax.stats``; Agarwal et al. 2021,
https://arxiv.org/abs/2108.13264).

Run it on two runs of the same environment::

    python experiments/train.py --agent a2c --num-seeds 16 --total-steps 100000 --out results/a2c
    python experiments/train.py --agent ppo --num-seeds 16 --total-steps 100000 --out results/ppo
    python examples/compare_runs.py results/a2c results/ppo --out a2c_vs_ppo.png

Matplotlib draws off-screen (the Agg backend), so it works on a headless machine.
``experiments/compare.py`` is the full command-line version (any number of runs, checks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from rljax import stats
from rljax.io import plots

STATS = ("mean", "median", "iqm")


def load(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A results folder's ``summary.json`` and its ``metrics.csv`` as arrays."""
    summary = json.loads((folder / "summary.json").read_text())
    return summary, plots.read_metrics(folder / "metrics.csv")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", type=Path, help="a results folder written by experiments/train.py")
    p.add_argument("run_b", type=Path, help="another one, on the same environment")
    p.add_argument("--out", type=Path, default=Path("compare_runs.png"), help="the PNG to write")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = p.parse_args(argv)

    runs = {}
    for folder in (args.run_a, args.run_b):
        if not (folder / "summary.json").is_file() or not (folder / "metrics.csv").is_file():
            p.error(f"{folder}: no summary.json and metrics.csv (not a finished results folder)")
        runs[folder.resolve().name] = load(folder)
    if len(runs) < 2:  # two folders of the same name: label them by path
        runs = {str(f): load(f) for f in (args.run_a, args.run_b)}
    (name_a, (sum_a, _)), (name_b, (sum_b, _)) = runs.items()
    if sum_a["env"] != sum_b["env"]:
        p.error(f"the runs are on different environments ({sum_a['env']}, {sum_b['env']})")

    print(f"greedy evaluation return per seed on {sum_a['env']}; 95% bootstrap CIs")
    print(f"{'run':<24} {'seeds':>5}  {'mean':>22}  {'median':>22}  {'IQM':>22}")
    for name, (summary, _) in runs.items():
        agg = stats.aggregate(summary["eval_returns"], reps=args.reps, seed=0)
        cols = [f"{agg[k]:.1f} [{agg[f'{k}_ci'][0]:.1f}, {agg[f'{k}_ci'][1]:.1f}]" for k in STATS]
        print(f"{name:<24} {summary['num_seeds']:>5}  " + "  ".join(f"{c:>22}" for c in cols))
    a, b = np.asarray(sum_a["eval_returns"]), np.asarray(sum_b["eval_returns"])
    poi = stats.probability_of_improvement(a, b)
    lo, hi = stats.probability_of_improvement_ci(a, b, reps=args.reps, seed=0)
    print(f"P({name_a} > {name_b}) = {poi:.3f} [95% CI {lo:.3f}, {hi:.3f}]")

    plots.plot_curves(
        [(name, metrics) for name, (_, metrics) in runs.items()],
        args.out,
        threshold=sum_a.get("solved_threshold"),
        title=f"{sum_a['env']}: {name_a} vs {name_b}",
        reps=min(args.reps, 1000),
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
