"""Hyperparameter sweeps: every (setting, seed) pair trains in ONE compile.

    python experiments/sweep.py --agent ppo --env CartPole-v1 --num-seeds 16 \
        --grid lr=1e-4,3e-4,1e-3 ent_coef=0,0.01
    python experiments/sweep.py --agent a2c --sample 8 \
        --space lr=log:1e-4:1e-2 gamma=uniform:0.95:0.999
    python experiments/sweep.py --agent a2c --grid lr=1e-3,3e-3 --loop hidden_size=64,128

Float hyperparameters are leaves of the agent's config, so a grid is one more vmap axis: the
runs (settings x seeds) share a single compiled program. Shape-changing settings (network
width, num_envs, ...) are static and cannot share a compile; ``--loop`` sweeps them with one
compile per value. Run i of every setting uses the same key ``fold_in(key(seed), i)``, so
settings are compared on common random numbers.

Writes DIR/<setting>/ (config.json, metrics.csv, summary.json, curves.png) for each setting,
and DIR/sweep.csv and DIR/sweep.md ranking the settings by IQM of the greedy evaluation return
with 95% bootstrap confidence intervals.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import shutil
import sys
from pathlib import Path
from typing import Any

import cli  # experiments/cli.py, next to this script

PROG = "sweep.py"


UsageError = cli.UsageError


def _parser(agents, env_names) -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description=__doc__)
    p.add_argument("--agent", default="a2c", help=f"algorithm: {', '.join(agents)}")
    p.add_argument("--env", default="CartPole-v1", help=f"gymnax env: {', '.join(env_names)}")
    p.add_argument(
        "--preset", default="default", help="named setting of --agent (train.py --help lists them)"
    )
    p.add_argument("--num-seeds", type=cli.count, default=16, help="seeds per setting")
    p.add_argument("--seed", type=cli.count, default=0, help="root seed, shared by the settings")
    p.add_argument(
        "--total-steps",
        type=cli.count,
        default=None,
        help="env steps per run, rounded down to whole updates (default: the preset's)",
    )
    p.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="NAME=V1,V2",
        help="float hyperparameters (ent_coef or ent-coef): every combination (vmapped, one "
        "compile)",
    )
    p.add_argument(
        "--sample",
        type=cli.count,
        default=None,
        metavar="N",
        help="random search: N settings drawn from --space",
    )
    p.add_argument(
        "--space",
        nargs="+",
        default=[],
        metavar="NAME=log:LO:HI|uniform:LO:HI",
        help="--sample's distribution of each float hyperparameter",
    )
    p.add_argument(
        "--loop",
        nargs="+",
        default=[],
        metavar="NAME=V1,V2",
        help="shape-changing settings: one compile per value",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="sweep folder (default: results/sweep_AGENT_ENV)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a sweep in --out")
    p.add_argument("--num-chunks", type=cli.count, default=20, help="logging points")
    p.add_argument(
        "--eval-episodes", type=cli.count, default=100, help="evaluation episodes per run"
    )
    p.add_argument(
        "--devices",
        default="auto",
        help="a number, 'all' or 'auto' (the default: the most devices that divide the runs; "
        "on CPU one device per core, at most 8)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    cli.add_compile_cache_flag(p)
    return p


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise UsageError(f"{flag} {item!r}: expected NAME=VALUES")
        out.append((cli.hyperparameter(name), values))
    return out


def _fields(config_cls) -> tuple[dict[str, Any], dict[str, Any]]:
    """(float leaves, static fields) of an agent config, name -> dataclass field."""
    leaves, static = {}, {}
    for f in dataclasses.fields(config_cls):
        (static if f.metadata.get("pytree_node", True) is False else leaves)[f.name] = f
    return leaves, static


def _check_name(name: str, flag: str, agent: str, leaves: dict, static: dict, want_static: bool):
    if name in leaves and not want_static:
        return
    if name in static and want_static and name != "total_steps":
        return
    if name in static and not want_static:
        raise UsageError(
            f"{flag} {name}: shape-changing (static) setting cannot share one compile; "
            f"sweep it with --loop {name}=..."
        )
    if name in leaves and want_static:
        raise UsageError(f"--loop {name}: a float hyperparameter; sweep it with --grid {name}=...")
    valid = ", ".join(sorted(static if want_static else leaves))
    raise UsageError(f"{flag} {name}: unknown hyperparameter of {agent}; valid: {valid}")


def _floats(name: str, values: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in values.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {name}={values}: values must be numbers") from None


def settings_from_args(args, agent) -> tuple[list[dict], list[dict]]:
    """(float settings, loop settings) as lists of {name: value} dicts."""
    import numpy as np

    leaves, static = _fields(agent.config)
    if args.grid and args.sample is not None:
        raise UsageError("--grid and --sample are exclusive: pick one")
    if args.sample is not None:
        if args.sample < 1:
            raise UsageError(f"--sample must be >= 1, got {args.sample}")
        if not args.space:
            raise UsageError("--sample needs --space NAME=log:LO:HI or NAME=uniform:LO:HI")
        rng = np.random.default_rng(args.seed)
        draws: dict[str, Any] = {}
        for name, spec in _pairs(args.space, "--space"):
            _check_name(name, "--space", agent.name, leaves, static, want_static=False)
            kind, *bounds = spec.split(":")
            lo, hi = _floats(name, ",".join(bounds), "--space") if len(bounds) == 2 else (0, 0)
            if (
                kind not in ("log", "uniform")
                or len(bounds) != 2
                or not lo < hi
                or (kind == "log" and lo <= 0)
            ):
                raise UsageError(
                    f"--space {name}={spec}: expected log:LO:HI (0 < LO < HI) or uniform:LO:HI"
                )
            u = rng.uniform(size=args.sample)
            draws[name] = (
                np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
                if kind == "log"
                else lo + u * (hi - lo)
            )
        grid = [{k: float(v[i]) for k, v in draws.items()} for i in range(args.sample)]
    else:
        axes = []
        for name, values in _pairs(args.grid, "--grid"):
            _check_name(name, "--grid", agent.name, leaves, static, want_static=False)
            axes.append([(name, v) for v in _floats(name, values, "--grid")])
        grid = [dict(c) for c in itertools.product(*axes)] if axes else [{}]
    loops = []
    for name, values in _pairs(args.loop, "--loop"):
        _check_name(name, "--loop", agent.name, leaves, static, want_static=True)
        kind = {"int": int, "float": float, "str": str, "bool": lambda v: v in ("1", "true")}[
            str(static[name].type)
        ]
        try:
            loops.append([(name, kind(v)) for v in values.split(",")])
        except ValueError:
            raise UsageError(f"--loop {name}={values}: bad value") from None
    return grid, [dict(c) for c in itertools.product(*loops)] if loops else [{}]


def _steps_to_solve(steps: list | None) -> dict:
    """Sweep-table columns: how many runs' training windows were solved, and the median and
    maximum env steps it took (the maximum only when every run was solved)."""
    if steps is None:
        return {}
    done = sorted(x for x in steps if x is not None)
    if not done:
        return {"window_solved": 0, "steps_to_solve_median": None, "steps_to_solve_max": None}
    return {
        "window_solved": len(done),
        "steps_to_solve_median": done[len(done) // 2],
        "steps_to_solve_max": done[-1] if len(done) == len(steps) else None,
    }


def setting_name(setting: dict) -> str:
    return (
        "_".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items())
        or "base"
    )


def _write_setting(work: Path, dest: Path, block: range, summary: dict, cfg_json: dict, spec):
    """Per-setting results folder cut out of the combined run."""
    from rljax import stats
    from rljax.io import plots
    from rljax.run import results

    dest.mkdir(parents=True, exist_ok=True)
    results.write_json(dest / "config.json", cfg_json)
    rows = list(csv.reader((work / "metrics.csv").read_text().splitlines()))
    with open(dest / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        for r in rows[1:]:
            if int(r[0]) in block:
                w.writerow([int(r[0]) - block.start, *r[1:]])
    per_run = (
        "eval_returns",
        "eval_returns_sampled",
        "solved",
        "episodes_to_solve",
        "steps_to_solve",
    )
    s = {k: v for k, v in summary.items() if k not in per_run}
    for k in per_run:
        s[k] = None if summary[k] is None else [summary[k][i] for i in block]
    s["num_seeds"] = len(block)
    if s["solved"] is not None:
        s["solved_count"] = int(sum(s["solved"]))
        s["solved_fraction"] = s["solved_count"] / len(block)
    s.pop("warning", None)
    s.update(stats.across_seeds(s["eval_returns"]))
    results.write_json(dest / "summary.json", s)
    plots.plot_curves(
        [(dest.name, plots.read_metrics(dest / "metrics.csv"))],
        dest / "curves.png",
        threshold=spec.solved_threshold,
        title=dest.name,
    )
    return s


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from rljax.run import xla_cpu

    xla_cpu.configure_script("auto")  # before JAX starts: one JAX device per CPU core
    from rljax import envs, stats
    from rljax.agents import AGENTS, ConfigError
    from rljax.agents.base import check_positive_int
    from rljax.run import compile_cache, experiment, parallel, results

    try:
        args = _parser(list(AGENTS), list(envs.ENVS)).parse_args(argv)
        cli.check_choice("--agent", args.agent, list(AGENTS))
        cli.check_choice("--env", args.env, list(envs.ENVS))
        agent = AGENTS[args.agent]
        cli.check_preset(agent, args.preset)
        check_positive_int("num_seeds", args.num_seeds)
        check_positive_int("num_chunks", args.num_chunks)
        check_positive_int("eval_episodes", args.eval_episodes)
        grid, loops = settings_from_args(args, agent)
        env, env_params = envs.make(args.env)
        spec = envs.spec(env, env_params)
        base = {} if args.total_steps is None else {"total_steps": args.total_steps}
        plans = []
        for loop in loops:
            build = experiment.build_config
            base_cfg = cli.warning_lines(
                PROG, args.quiet, build, agent, args.preset, {**base, **loop}, spec
            )
            configs = []
            for setting in grid:
                cfg = base_cfg.replace(**setting)
                cli.warning_lines(PROG, args.quiet, cfg.validate, spec)
                configs.append(cfg)
            plans.append((loop, base_cfg, configs))
        notices = {cli.budget_notice(c.total_steps, c.steps_per_update(spec)) for _, c, _ in plans}
        runs = len(grid) * args.num_seeds
        devices = parallel.parse_devices(args.devices, runs)
        parallel.check_devices(devices, runs)
        out = args.out or Path("results") / f"sweep_{args.agent}_{args.env}"
        if out.exists() and any(out.iterdir()):
            if not (out / "sweep.csv").exists() and not (out / "_runs").exists():
                raise UsageError(f"--out {out} exists and is not a sweep folder; choose another")
            if not args.overwrite:
                raise UsageError(f"--out {out} already holds a sweep; pass --overwrite")
        cache = cli.use_compile_cache(PROG, args.compile_cache, False, args.quiet)
    except (UsageError, ConfigError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    import jax
    import jax.numpy as jnp

    for notice in sorted(n for n in notices if n):
        print(f"{PROG}: {notice}", file=sys.stderr)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    table = []
    cache_counts = compile_cache.counts()
    for loop, base_cfg, configs in plans:
        runs = [c for c in configs for _ in range(args.num_seeds)]
        run_configs = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *runs)
        keys = jnp.tile(experiment.run_keys(args.seed, args.num_seeds), len(configs))
        work = out / "_runs" / (setting_name(loop) if loop else "all")
        if not args.quiet:
            print(
                f"{len(configs)} settings x {args.num_seeds} seeds = {len(runs)} runs in one "
                f"compile{' (' + setting_name(loop) + ')' if loop else ''}",
                file=sys.stderr,
            )
        result = experiment.train_and_evaluate(
            agent,
            base_cfg,
            args.env,
            len(runs),
            args.seed,
            work,
            num_chunks=args.num_chunks,
            eval_episodes=args.eval_episodes,
            quiet=args.quiet,
            run_configs=run_configs,
            keys=keys,
            visuals=False,
            devices=devices,
            checkpoint_every=10**9,
        )
        result.summary["compile_cache"] = compile_cache.stats(cache, cache_counts)
        cache_counts = compile_cache.counts()
        for i, (setting, cfg) in enumerate(zip(grid, configs, strict=True)):
            name = setting_name({**loop, **setting})
            block = range(i * args.num_seeds, (i + 1) * args.num_seeds)
            cfg_json = {
                "agent": args.agent,
                "env": args.env,
                "num_seeds": args.num_seeds,
                "seed": args.seed,
                "total_steps": cli.rounded_budget(cfg.total_steps, cfg.steps_per_update(spec)),
                "requested_total_steps": cfg.total_steps,
                "preset": args.preset,
                "setting": {**loop, **setting},
                "config": results.config_dict(cfg),
                "versions": results.versions(),
            }
            s = _write_setting(work, out / name, block, result.summary, cfg_json, spec)
            table.append(
                {
                    "setting": name,
                    **{**loop, **setting},
                    "iqm": s["iqm"],
                    "iqm_low": None if s["iqm_ci"] is None else s["iqm_ci"][0],
                    "iqm_high": None if s["iqm_ci"] is None else s["iqm_ci"][1],
                    "mean": s["mean"],
                    "median": s["median"],
                    "solved": s.get("solved_count"),
                    **_steps_to_solve(s.get("steps_to_solve")),
                    "compile_time_s": result.summary["compile_time_s"],
                    "wall_time_s": result.summary["wall_time_s"],
                }
            )
    table.sort(key=lambda r: -r["iqm"])
    cols = list(dict.fromkeys(k for r in table for k in r))
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(table)
    lines = [
        "| rank | setting | IQM [95% CI] | mean | median | solved | training window solved "
        "by (median / max env steps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, r in enumerate(table, 1):
        solved = "-" if r["solved"] is None else f"{r['solved']}/{args.num_seeds}"
        by = "-" if r.get("window_solved") is None else f"0/{args.num_seeds}"
        if r.get("window_solved"):
            late = f"{r['steps_to_solve_max']:,}" if r["steps_to_solve_max"] else "not all"
            by = f"{r['window_solved']}/{args.num_seeds}: {r['steps_to_solve_median']:,} / {late}"
        ci = "" if r["iqm_low"] is None else f" [{r['iqm_low']:.1f}, {r['iqm_high']:.1f}]"
        lines.append(
            f"| {rank} | {r['setting']} | {r['iqm']:.1f}{ci} | {r['mean']:.1f} | "
            f"{r['median']:.1f} | {solved} | {by} |"
        )
    lines.append("")
    lines.append(f"Statistics over the greedy evaluation returns of {args.num_seeds} seeds.")
    warning = stats.few_seeds_warning(args.num_seeds)
    if warning:
        lines.append(f"Warning: {warning}.")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    total = sum(1 for _ in plans)
    print(
        f"{len(table)} settings x {args.num_seeds} seeds in {total} compile(s); results in {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
