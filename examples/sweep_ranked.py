"""Sweep one hyperparameter over many seeds in ONE jit, and rank the values by IQM.

What it shows: a hyperparameter sweep from Python with rljax's run API, no subprocess. Float
hyperparameters are leaves of an agent's frozen config, so the values stack into one config
with a leading axis, and every (value, seed) pair is one run of the same program:
``jax.jit(jax.vmap(jax.vmap(run)))`` over values and seeds, where ``run`` is the runner's
training (``rljax.run.loop.make_train``) followed by a greedy evaluation
(``rljax.evaluation.evaluate``). Every value gets the same seeds' keys (run i's key is
``fold_in(key(seed), i)``: common random numbers), the keys ``experiments/sweep.py`` gives its
runs. The greedy evaluation returns, one per seed, are then ranked by their interquartile mean
with 95% bootstrap confidence intervals (``rljax.stats.aggregate``; Agarwal et al. 2021,
https://arxiv.org/abs/2108.13264).

Run it (about a minute on a 2-core CPU)::

    python examples/sweep_ranked.py --agent a2c --param lr --values 3e-4,1e-3,3e-3 \
        --num-seeds 16 --total-steps 100000 --out results/lr_sweep

It prints the ranking and writes it to ``OUT/ranking.csv``. ``experiments/sweep.py`` is the
full command-line version (grids, random search, shape-changing settings, learning curves and a
results folder per setting).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rljax import envs, evaluation, stats
from rljax.agents import AGENTS, ConfigError
from rljax.run import experiment, loop


def float_leaves(config_cls) -> list[str]:
    """The config fields a vmap can sweep: float leaves (static fields change shapes)."""
    fields = dataclasses.fields(config_cls)
    return [
        f.name for f in fields if f.metadata.get("pytree_node", True) and f.type in ("float", float)
    ]


def sweep(agent, env_name: str, param: str, values, num_seeds: int, seed: int, **overrides):
    """Greedy evaluation return of every (value, seed) pair, trained at once: [values, seeds].

    One ``jit`` of a vmap over values of a vmap over seeds: each run is
    ``rljax.run.loop.make_train`` (the runner's updates, one ``lax.scan``) followed by
    ``rljax.evaluation.evaluate`` of its greedy policy on the run's evaluation key stream.
    """
    eval_episodes = overrides.pop("eval_episodes", 20)
    env, env_params = envs.make(env_name)
    spec = envs.spec(env, env_params)
    base = experiment.build_config(agent, "default", overrides, spec)  # defaults + overrides
    configs = []
    for value in values:
        config = base.replace(**{param: value})
        config.validate(spec)  # a ConfigError naming the field and its valid range
        configs.append(config)
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *configs)
    keys = experiment.run_keys(seed, num_seeds)  # the same seeds for every value

    def run(config, key):
        carry, _ = loop.make_train(agent, config, env, env_params)(key)
        act = agent.make_act(config, spec)
        greedy = lambda k, params, obs: act(k, params, obs, True)  # noqa: E731
        key_eval = loop.streams(key).eval_greedy
        params = agent.params(carry.agent)
        return evaluation.evaluate(key_eval, greedy, params, env, env_params, eval_episodes)

    over_seeds = jax.vmap(run, in_axes=(None, 0))
    returns = jax.jit(jax.vmap(over_seeds, in_axes=(0, None)))(stacked, keys)
    return np.asarray(returns).mean(-1)  # [values, seeds, episodes] -> [values, seeds]


def rank(values, scores: np.ndarray, reps: int = 2000) -> list[dict]:
    """One row per value, best IQM first, with mean, median and IQM and their 95% CIs."""
    rows = [
        {"value": v, **stats.aggregate(s, reps=reps, seed=0)}
        for v, s in zip(values, scores, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["iqm"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default="a2c", choices=list(AGENTS))
    p.add_argument("--env", default="CartPole-v1", help="a gymnax env, e.g. CartPole-v1")
    p.add_argument("--param", default="lr", help="the float hyperparameter to sweep")
    p.add_argument("--values", default="3e-4,1e-3,3e-3", help="comma-separated values")
    p.add_argument("--num-seeds", type=int, default=16, help="seeds per value")
    p.add_argument("--seed", type=int, default=0, help="root seed: seed i uses fold_in(key, i)")
    p.add_argument("--total-steps", type=int, default=100_000, help="env steps per run")
    p.add_argument("--eval-episodes", type=int, default=20, help="greedy episodes per run")
    p.add_argument("--out", type=Path, default=Path("results/sweep_ranked"))
    args = p.parse_args(argv)

    agent = AGENTS[args.agent]
    if args.param not in float_leaves(agent.config):
        p.error(f"--param {args.param}: valid: {', '.join(float_leaves(agent.config))}")
    try:
        values = [float(v) for v in args.values.split(",")]
    except ValueError:
        p.error(f"--values {args.values!r}: expected comma-separated numbers")
    if args.num_seeds < 1:
        p.error(f"--num-seeds must be >= 1, got {args.num_seeds}")
    try:
        t = time.perf_counter()
        scores = sweep(
            agent,
            args.env,
            args.param,
            values,
            args.num_seeds,
            args.seed,
            total_steps=args.total_steps,
            eval_episodes=args.eval_episodes,
        )
        seconds = time.perf_counter() - t
    except ConfigError as e:
        p.error(str(e))

    rows = rank(values, scores)
    print(
        f"{args.agent} on {args.env}: {len(values)} values of {args.param} x {args.num_seeds} "
        f"seeds x {args.total_steps} steps in one jit ({seconds:.1f}s with the compile)"
    )
    print("greedy evaluation return per seed; 95% percentile-bootstrap CIs")
    print(f"{'rank':>4}  {args.param:>10}  {'IQM [95% CI]':>26}  {'mean':>8}  {'median':>8}")
    for i, r in enumerate(rows, 1):
        lo, hi = r["iqm_ci"]
        iqm = f"{r['iqm']:.1f} [{lo:.1f}, {hi:.1f}]"
        print(f"{i:>4}  {r['value']:>10.4g}  {iqm:>26}  {r['mean']:>8.1f}  {r['median']:>8.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "ranking.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", args.param, "iqm", "iqm_low", "iqm_high", "mean", "median"])
        for i, r in enumerate(rows, 1):
            w.writerow([i, r["value"], r["iqm"], *r["iqm_ci"], r["mean"], r["median"]])
    print(f"wrote {args.out / 'ranking.csv'}")
    return 0


if __name__ == "__main__":
    from rljax.run import xla_cpu

    xla_cpu.configure(strict=False)  # a larger XLA:CPU thread pool, before JAX starts
    sys.exit(main())
