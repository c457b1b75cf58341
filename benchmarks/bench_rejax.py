"""PPO (CartPole-v1) and SAC (Pendulum-v1) training speed and results against rejax 0.1.3.

    python -m venv .venv-rejax
    .venv-rejax/bin/pip install rejax==0.1.3 gymnax==1.0.1 jax==0.10.2 jaxlib==0.10.2 \\
        flax==0.12.8 optax==0.2.8 distrax==0.1.9
    python benchmarks/bench_rejax.py --rejax-python .venv-rejax/bin/python

Each side runs in its own interpreter (rejax in its virtual environment, rljax in this one),
back to back: ``jit(vmap(train))`` over the seeds is compiled ahead of time (compile time
reported apart) and run once; then each seed's trained policy plays ``--episodes`` greedy
episodes. Both libraries run on one device, then with their seeds sharded over ``--devices``
CPU host devices (one per core by default): rljax as ``experiments/train.py`` runs it, rejax
sharded by this benchmark. The headline ratio compares each as a user gets it: rljax over the
cores (its default) against rejax on one device. CartPole-v1 counts as solved at a mean
return >= 475. The hyperparameters are rejax's configs/gymnax/cartpole.yaml (ppo), i.e.
rljax's ``ppo`` preset "rejax": 5 envs x 100 steps, 5 epochs x 5 minibatches, lr 7.5e-4,
max_grad_norm 0.5, 2x64 tanh, 1e5 steps. ``--algo sac`` compares SAC on Pendulum-v1 with
rejax's configs/gymnax/pendulum.yaml (sac section), i.e. rljax's ``sac`` preset "rejax": 1 env,
batch 256, lr 0.01, buffer 10k, 256 warm-up steps, polyak 0.98, 2x64 swish, normalised
observations, 1e4 steps; a seed counts as good at a greedy mean >= -200 (``solved_count``).

On a noisy machine, ``--repeats N`` runs each pair N times, alternating which library goes
first (rejax, rljax, then rljax, rejax, ...); a ratio on equal devices is then the median of the
pairs' ratios, and each library's reported run is its median-speed one.

rejax 0.1.3 unpacks the pre-1.0 gymnax step tuple ``(obs, state, reward, done, info)``;
gymnax 1.0 returns ``(obs, state, reward, terminated, truncated, info)``. :class:`DoneAdapter`
below (benchmark code only) gives rejax ``done = terminated | truncated``, so rejax treats the
500-step time limit as terminal (no bootstrap), which is what rejax did with pre-1.0 gymnax;
rljax bootstraps through truncations. rejax's in-training evaluation (every ``eval_freq``
steps, 128 episodes) is replaced by a no-op so both sides time training alone.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLVED = 475.0
# rejax configs/gymnax/cartpole.yaml, ppo section (eval_freq set apart below).
REJAX_CONFIG = dict(
    agent_kwargs={"activation": "tanh"},  # hidden_layer_sizes default (64, 64)
    num_envs=5,
    num_steps=100,
    num_epochs=5,
    num_minibatches=5,
    learning_rate=0.00075,
    max_grad_norm=0.5,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
)
# rejax configs/gymnax/pendulum.yaml, sac section.
REJAX_SAC_CONFIG = dict(
    agent_kwargs={"activation": "swish"},
    num_envs=1,
    buffer_size=10_000,
    fill_buffer=256,
    batch_size=256,
    learning_rate=0.01,
    num_epochs=1,
    gamma=0.99,
    polyak=0.98,
    target_entropy_ratio=None,
    normalize_observations=True,
)
ALGOS = {  # algo: (env, rejax config, threshold of a solved/good seed)
    "ppo": ("CartPole-v1", REJAX_CONFIG, SOLVED),
    "sac": ("Pendulum-v1", REJAX_SAC_CONFIG, -200.0),
}


class DoneAdapter:
    """A gymnax >= 1.0 env whose ``step`` returns the pre-1.0 5-tuple rejax 0.1.3 unpacks.

    ``done = terminated | truncated``: time limits become terminal for rejax (its semantics).
    """

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        if name == "env":  # not set yet (copy/deepcopy build the object without __init__)
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, key, params=None):
        return self.env.reset(key, params)

    def step(self, key, state, action, params=None):
        import jax.numpy as jnp

        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def _run_sharding(devices: int):
    """The seed axis sharded over ``devices`` devices (None for one), for the rejax side, whose
    interpreter has no rljax (the rljax side uses ``rljax.io.parallel.run_sharding``)."""
    import jax

    if devices == 1:
        return None
    assert len(jax.devices()) >= devices, jax.devices()
    mesh = jax.make_mesh((devices,), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.NamedSharding(mesh, jax.P("runs"))


def _timed_compile_and_run(fn, keys, sharding=None, compiler_options=None):
    import jax

    jax.config.update("jax_enable_compilation_cache", False)  # time every compile
    shardings = {} if sharding is None else dict(in_shardings=sharding, out_shardings=sharding)
    t = time.perf_counter()
    compiled = jax.jit(fn, **shardings).lower(keys).compile(compiler_options)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    return out, compile_s, time.perf_counter() - t


def _common(name, num_seeds, steps, compile_s, run_s, returns, eval_s, versions, devices,
            threshold=SOLVED):  # fmt: skip
    import jax
    import numpy as np

    mean = np.asarray(returns).mean(1)
    return {
        "library": name,
        "devices": devices,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "xla_cpu_threads": _eigen_threads(),
        "backend": jax.default_backend(),
        "versions": versions,
        "num_seeds": num_seeds,
        "steps_per_seed": steps,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "train_steps_per_s": round(steps * num_seeds / run_s, 1),
        "eval_s": round(eval_s, 3),
        "eval_episodes": int(np.asarray(returns).shape[1]),
        "greedy_mean_returns": [round(float(x), 2) for x in mean],
        "solved_count": int(np.sum(mean >= threshold)),
        "median_return": round(float(np.median(mean)), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg_after": os.getloadavg(),
    }


def _eigen_threads() -> int | None:
    """Threads in XLA:CPU's intra-op pool of this process (Linux), None if unknown."""
    try:
        tasks = os.listdir("/proc/self/task")
        return sum(
            Path(f"/proc/self/task/{t}/comm").read_text().startswith("tf_XLAEigen") for t in tasks
        )
    except OSError:
        return None


def side_rejax(num_seeds: int, steps: int, episodes: int, devices: int, algo: str = "ppo") -> dict:
    """rejax's PPO (CartPole-v1) or SAC (Pendulum-v1) with its tuned config: trained, then each
    seed's policy evaluated greedily (PPO: the argmax of its logits; SAC: rejax's own act)."""
    import gymnax
    import jax
    import jax.numpy as jnp
    from rejax import PPO, SAC
    from rejax.evaluate import evaluate_single

    env_name, config, threshold = ALGOS[algo]
    env, env_params = gymnax.make(env_name)
    learner = (PPO if algo == "ppo" else SAC).create(
        env=DoneAdapter(env),
        env_params=env_params,
        total_timesteps=steps,
        eval_freq=steps,  # PPO: one block of ceil(steps / 500) iterations
        skip_initial_evaluation=True,
        **config,
    )
    learner = learner.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    total = steps
    if algo == "ppo":
        iteration = learner.num_envs * learner.num_steps
        total = -(-steps // iteration) * iteration
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    # With devices > 1 (sharded by this benchmark, not by rejax) XLA partitions the vmap.
    sharding = _run_sharding(devices)
    (ts, _), compile_s, run_s = _timed_compile_and_run(jax.vmap(learner.train), keys, sharding)

    def greedy_act(ts):
        if algo != "ppo":
            return learner.make_act(ts)

        def act(obs, rng):
            logits = learner.actor.apply(
                ts.actor_ts.params, obs[None], method=lambda m, x: m._action_dist(x).logits
            )
            return jnp.argmax(logits, -1).squeeze()

        return act

    def greedy_returns(ts, key):
        keys = jax.random.split(key, episodes)
        run = jax.vmap(evaluate_single, in_axes=(None, None, None, 0, None))
        _, returns = run(
            greedy_act(ts), learner.env, learner.env_params, keys, env_params.max_steps_in_episode
        )
        return returns

    eval_keys = jax.random.split(jax.random.PRNGKey(1), num_seeds)
    t = time.perf_counter()
    returns = jax.block_until_ready(jax.jit(jax.vmap(greedy_returns))(ts, eval_keys))
    eval_s = time.perf_counter() - t
    from importlib.metadata import version

    versions = {name: version(name) for name in ("rejax", "gymnax", "jax", "flax", "optax")}
    return _common(
        "rejax", num_seeds, total, compile_s, run_s, returns, eval_s, versions, devices, threshold
    )


def side_rljax(
    num_seeds: int, steps: int, episodes: int, profile: bool, devices: int, algo: str = "ppo"
) -> dict:
    from rljax.run import xla_cpu

    xla_cpu.configure_script(1)  # RLJAX_CPU_DEVICES from _side_env; before JAX starts
    import jax
    import numpy as np

    from rljax import envs, evaluation
    from rljax.agents import AGENTS
    from rljax.run import experiment, loop, parallel, results

    agent = AGENTS[algo]
    env_name, _, threshold = ALGOS[algo]
    env, env_params = envs.make(env_name)
    spec = envs.spec(env, env_params)
    config = experiment.build_config(agent, "rejax", {"total_steps": steps}, spec)
    per_update = config.steps_per_update(spec)
    n = config.total_steps // per_update
    keys = experiment.run_keys(0, num_seeds)
    # As experiments/train.py runs it: each device trains its seeds in vmapped blocks.
    sharding = parallel.run_sharding(devices, num_seeds)
    train = parallel.map_runs(
        loop.make_train(agent, config, env, env_params), parallel.default_block(), sharding
    )
    options = loop.compiler_options(agent)  # as the runner compiles it
    (carry, _), compile_s, run_s = _timed_compile_and_run(train, keys, sharding, options)

    act = agent.make_act(config, spec)
    params = agent.params(carry.agent)

    def one(k, p):
        fn = lambda kk, pp, o: act(kk, pp, o, True)  # noqa: E731
        return evaluation.evaluate(k, fn, p, env, env_params, episodes)

    eval_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(np.arange(num_seeds))
    t = time.perf_counter()
    returns = jax.block_until_ready(jax.jit(jax.vmap(one))(eval_keys, params))
    eval_s = time.perf_counter() - t
    out = _common(
        "rljax", num_seeds, n * per_update, compile_s, run_s, returns, eval_s,
        results.versions(), devices, threshold,
    )  # fmt: skip
    if profile:
        out["profile"] = _profile_rljax(agent, config, env, env_params, spec, keys, n)
        out["profile"]["full_train_run_s"] = out["run_s"]
    return out


def _profile_rljax(agent, config, env, env_params, spec, keys, n) -> dict:
    """Rollout-only: the same ``n`` collections with the initial parameters, no learning."""
    import jax

    from rljax.run import loop

    init = loop.init_fn(agent, config, spec, env, env_params)
    collect = loop.collect_fn(agent, config, spec, env, env_params, False)

    def rollouts_only(key):
        def body(carry, _):
            key, env_state, obs, traj = collect(carry)
            return carry._replace(key=key, env_state=env_state, obs=obs), traj.reward.sum()

        return jax.lax.scan(body, init(key), None, length=n)[1]

    _, compile_s, run_s = _timed_compile_and_run(jax.vmap(rollouts_only), keys)
    return {"rollout_only_compile_s": round(compile_s, 3), "rollout_only_run_s": round(run_s, 3)}


def _run_side(python: str, side: str, args, devices: int, env: dict) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--side-devices", str(devices)]
    cmd += ["--seeds", str(args.seeds), "--steps", str(args.steps)]
    cmd += ["--episodes", str(args.episodes), "--algo", args.algo]
    if args.profile and side == "rljax" and args.algo == "ppo":
        cmd.append("--profile")
    load = os.getloadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{side} side ({devices} devices) failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["loadavg_before"] = load
    return result


@functools.cache
def _xla_cpu():
    """rljax/run/xla_cpu.py loaded on its own (so the parent process needs no rljax install)."""
    path = ROOT / "rljax" / "run" / "xla_cpu.py"
    spec = importlib.util.spec_from_file_location("_rljax_xla_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _side_env(base: dict, side: str, devices: int) -> dict:
    """A side's environment.

    rljax's side calls rljax.run.xla_cpu.configure_script and is asked for ``devices`` host
    devices. rejax on one device runs as shipped; on several it gets the same XLA:CPU set-up
    (host devices; both keep XLA's own thread pool, one thread per core).
    """
    env = dict(base)
    if side == "rljax":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if devices > 1:
            env["RLJAX_CPU_DEVICES"] = str(devices)
        else:
            env.pop("RLJAX_CPU_DEVICES", None)
    elif devices > 1:
        env["RLJAX_CPU_DEVICES"] = str(devices)
        _xla_cpu().configure(environ=env)
    return env


def _describe(run: dict) -> str:
    """One side's run in one line: speed, compile and run time, seeds solved."""
    return (
        f"{run['train_steps_per_s']} steps/s (compile {run['compile_s']} s, "
        f"run {run['run_s']} s), solved {run['solved_count']}/{run['num_seeds']}"
    )


def _rljax_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main() -> None:
    base_env = dict(os.environ)  # before anything here could start JAX
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rejax-python", default=str(ROOT / ".venv-rejax" / "bin" / "python"))
    p.add_argument("--rljax-python", default=None, help="default: .venv, else this interpreter")
    p.add_argument("--algo", choices=tuple(ALGOS), default="ppo")
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--steps", type=int, default=None, help="default: 1e5 (ppo), 1e4 (sac)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument(
        "--devices",
        default="auto",
        help="CPU host devices for the sharded runs: a number or 'auto' (one per core, at most "
        "8, dividing --seeds); 1 runs only the one-device pair",
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="runs of each pair, alternating the order"
    )
    p.add_argument("--profile", action="store_true", help="also time rljax rollouts alone")
    p.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/rejax_comparison.json (ppo), "
        "benchmarks/rejax_sac_comparison.json (sac)"
    )  # fmt: skip
    p.add_argument("--side", choices=("rejax", "rljax"), help=argparse.SUPPRESS)
    p.add_argument("--side-devices", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps is None:
        args.steps = 100_000 if args.algo == "ppo" else 10_000
    if args.out is None:
        name = "rejax_comparison.json" if args.algo == "ppo" else "rejax_sac_comparison.json"
        args.out = ROOT / "benchmarks" / name

    if args.side == "rejax":
        out = side_rejax(args.seeds, args.steps, args.episodes, args.side_devices, args.algo)
        print(json.dumps(out))
        return
    if args.side == "rljax":
        out = side_rljax(
            args.seeds, args.steps, args.episodes, args.profile, args.side_devices, args.algo
        )
        print(json.dumps(out))
        return

    if args.devices == "auto":
        xla_cpu = _xla_cpu()
        cores = xla_cpu.cpu_devices("auto", xla_cpu.cores())
        devices = max(d for d in range(1, cores + 1) if args.seeds % d == 0)
    elif args.devices.isdigit() and int(args.devices) >= 1 and args.seeds % int(args.devices) == 0:
        devices = int(args.devices)
    else:
        print(f"--devices must be 'auto' or a number dividing --seeds, got {args.devices!r}")
        sys.exit(2)
    if args.repeats < 1:
        print(f"--repeats must be a positive integer, got {args.repeats}")
        sys.exit(2)
    check = subprocess.run(
        [args.rejax_python, "-c", "import rejax, gymnax; print(rejax.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    ) if Path(args.rejax_python).exists() else None  # fmt: skip
    if check is None or check.returncode:
        why = "not found" if check is None else check.stderr.strip().splitlines()[-1]
        print(f"rejax is not importable with {args.rejax_python}: {why}")
        sys.exit(2)

    rljax_python = args.rljax_python or _rljax_python()
    pythons = {"rejax": args.rejax_python, "rljax": rljax_python}
    runs, pair_ratios = {}, {}
    for n in sorted({1, devices}):
        repeats = {"rejax": [], "rljax": []}
        for i in range(args.repeats):
            for side in ("rejax", "rljax")[:: 1 if i % 2 == 0 else -1]:
                env = _side_env(base_env, side, n)
                run = _run_side(pythons[side], side, args, n, env)
                repeats[side].append(run)
                where = f"{side} on {n} device(s), run {i + 1}/{args.repeats}"
                print(f"{where}: {_describe(run)}", file=sys.stderr, flush=True)
        pair_ratios[n] = [
            round(b["train_steps_per_s"] / a["train_steps_per_s"], 3)
            for a, b in zip(repeats["rejax"], repeats["rljax"], strict=True)
        ]
        for side, side_runs in repeats.items():
            by_speed = sorted(side_runs, key=lambda run: run["train_steps_per_s"])
            runs[f"{side}_{n}"] = {
                **by_speed[(len(by_speed) - 1) // 2],  # the median (the slower of two middles)
                "train_steps_per_s_repeats": [run["train_steps_per_s"] for run in side_runs],
                "solved_count_repeats": [run["solved_count"] for run in side_runs],
            }

    def ratio(a: str, b: str) -> float:
        """rljax's speed over rejax's: on equal devices the median of the pairs' ratios, else
        the ratio of the two median-speed runs."""
        n, m = a.split("_")[1], b.split("_")[1]
        if n == m:
            return round(statistics.median(pair_ratios[int(n)]), 3)
        return round(runs[a]["train_steps_per_s"] / runs[b]["train_steps_per_s"], 3)

    env_name, rejax_config, _ = ALGOS[args.algo]
    summary = {
        "algo": args.algo,
        "env": env_name,
        "hyperparameters": rejax_config | {"total_timesteps": args.steps},
        "adapter": (
            "rejax sees done = terminated | truncated (pre-1.0 gymnax tuple): time limits are "
            "terminal for rejax; rljax bootstraps through truncations. rejax's in-training "
            "evaluation is a no-op here."
        ),
        "devices": devices,
        # rljax as experiments/train.py runs it (its seeds sharded over the CPU's cores) against
        # rejax as shipped (one device); then each library on the same number of devices.
        "speed_ratio_rljax_over_rejax": ratio(f"rljax_{devices}", "rejax_1"),
        "speed_ratio_one_device": ratio("rljax_1", "rejax_1"),
        f"speed_ratio_{devices}_devices": ratio(f"rljax_{devices}", f"rejax_{devices}"),
        "repeats": args.repeats,
        "pair_ratios": {f"{n}_devices": r for n, r in pair_ratios.items()},
        "solved_count": {name: run["solved_count"] for name, run in runs.items()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        "runs": runs,
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    keys = ("speed", "solved", "pair_ratios")
    print(json.dumps({k: v for k, v in summary.items() if k.startswith(keys)}))
    for name, run in runs.items():
        print(f"{name}: {_describe(run)}")


if __name__ == "__main__":
    main()
