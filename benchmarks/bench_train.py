"""Training speed as the number of seeds grows, and time to solve the default experiment.

    python benchmarks/bench_train.py --out benchmarks/results.json
    python benchmarks/bench_train.py --agent a2c --seeds 1 16 64 256 --steps 100000

For each seed count, one ``jit(vmap(train))`` is compiled ahead of time (compile time is
reported apart) and then run once, its seeds sharded over ``--devices`` devices as
``experiments/train.py`` does (``auto``: on CPU one host device per core, at most 8, as many as
divide the seeds); env steps per second count every seed's steps. Each
measurement runs in its own process so peak memory (max RSS) belongs to it alone.
``--solve`` also times the default experiment end to end (``experiments/train.py`` with its
defaults: compile, training, evaluation) and reports how many seeds it solved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(
    agent_name: str,
    env_name: str,
    num_seeds: int,
    steps: int,
    preset: str,
    block: str,
    devices: str = "1",
) -> dict:
    import jax

    from rljax import envs
    from rljax.agents import AGENTS
    from rljax.run import experiment, loop, parallel

    agent = AGENTS[agent_name]
    env, env_params = envs.make(env_name)
    spec = envs.spec(env, env_params)
    config = experiment.build_config(agent, preset, {"total_steps": steps}, spec)
    keys = experiment.run_keys(0, num_seeds)
    runs_per_block = parallel.default_block() if block == "auto" else parse_block(block)
    n_dev = parallel.auto_devices(num_seeds) if devices == "auto" else int(devices)
    sharding = parallel.run_sharding(n_dev, num_seeds)
    # The runner's program (rljax.run.loop), all updates in one chunk.
    train = loop.make_train(agent, config, env, env_params)
    train = parallel.map_runs(train, runs_per_block, sharding)
    shardings = {} if sharding is None else dict(in_shardings=sharding, out_shardings=sharding)
    train = jax.jit(train, **shardings)
    t = time.perf_counter()
    compiled = train.lower(keys).compile(loop.compiler_options(agent))  # as the runner does
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    state, _ = compiled(keys)
    jax.block_until_ready(state)
    run_s = time.perf_counter() - t
    total = config.total_steps // config.steps_per_update(spec) * config.steps_per_update(spec)
    return {
        "agent": agent_name,
        "env": env_name,
        "preset": preset,
        "num_seeds": num_seeds,
        "seed_block": runs_per_block,
        "devices": n_dev,
        "steps_per_seed": total,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "env_steps_per_s": round(total * num_seeds / run_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device_peak_mib": device_peak_mib(),
    }


def device_peak_mib() -> float | None:
    """Peak memory in use on the first device (GPU/TPU; None where JAX does not report it)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2**20, 1)


def solve_time(agent: str, env: str, preset: str, num_seeds: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "experiments" / "train.py"),
                "--agent",
                agent,
                "--env",
                env,
                "--preset",
                preset,
                "--out",
                str(out),
                "--quiet",
                "--compile-cache",
                "none",  # the time to solve includes every compile
                *([] if num_seeds is None else ["--num-seeds", str(num_seeds)]),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        s = json.loads((out / "summary.json").read_text())
    return {
        "agent": agent,
        "env": env,
        "preset": preset,
        "num_seeds": s["num_seeds"],
        "steps_per_seed": s["total_steps"],
        "solved_count": s["solved_count"],
        "seed_block": s.get("seed_block"),
        "devices": s.get("devices"),
        "process_wall_s": round(elapsed, 2),
        "wall_time_s": s["wall_time_s"],
        "compile_time_s": s["compile_time_s"],
        "train_time_s": s["train_time_s"],
        "eval_time_s": s["eval_time_s"],
        "steps_per_second": s["steps_per_second"],
    }


def parse_block(value: str) -> int | None:
    """``--seed-block``: "auto" (rljax's default for the backend), "none" (one vmap), or N."""
    return None if value == "none" else int(value)


def machine() -> dict:
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", default="a2c")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--preset", default="default")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 16, 64, 256, 1024])
    p.add_argument(
        "--seed-block",
        default="auto",
        help="runs per vmap: auto (64 on CPU, all elsewhere), none (all), or a number",
    )
    p.add_argument("--steps", type=int, default=100_000, help="env steps per seed")
    p.add_argument(
        "--devices",
        default="auto",
        help="devices to shard the seeds over: auto (as train.py: on CPU one per core, at most "
        "8, dividing the seeds) or a number",
    )
    p.add_argument("--solve", action="store_true", help="also time the default experiment")
    p.add_argument(
        "--solve-seeds",
        type=int,
        nargs="*",
        default=None,
        help="with --solve: time the default experiment at each of these seed counts "
        "(default: the experiment's own count)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:  # child process: one measurement, JSON on stdout
        from rljax.run import xla_cpu

        xla_cpu.configure_script("auto" if args.devices == "auto" else 1)  # before JAX starts
        from rljax.run import compile_cache

        compile_cache.disable()  # compile times are measured: nothing loads from a cache
        row = measure(
            args.agent, args.env, args.one, args.steps, args.preset, args.seed_block, args.devices
        )
        print(json.dumps(row))
        return 0
    rows = []
    for n in args.seeds:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--agent",
                args.agent,
                "--env",
                args.env,
                "--preset",
                args.preset,
                "--steps",
                str(args.steps),
                "--seed-block",
                args.seed_block,
                "--devices",
                args.devices,
                "--one",
                str(n),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{n:>5} seeds on {row['devices']} device(s): "
            f"{row['env_steps_per_s']:>12,.0f} env steps/s  "
            f"compile {row['compile_s']:.1f}s  run {row['run_s']:.1f}s  "
            f"peak {row['peak_rss_mib']:.0f} MiB",
            file=sys.stderr,
        )
    result = {"machine": machine(), "scaling": rows}
    if args.solve:
        rows = []
        for n in args.solve_seeds or [None]:
            rows.append(solve_time(args.agent, args.env, args.preset, n))
            print(f"default experiment: {rows[-1]}", file=sys.stderr)
        result["time_to_solve"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing[f"{args.agent}/{args.env}/{args.preset}"] = result
    args.out.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
