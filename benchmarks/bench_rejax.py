"""PPO training speed and solved seeds against rejax 0.1.3, CartPole-v1, same hyperparameters.

    python -m venv .venv-rejax
    .venv-rejax/bin/pip install rejax==0.1.3 gymnax==1.0.1 jax==0.10.2 jaxlib==0.10.2 \\
        flax==0.12.8 optax==0.2.8 distrax==0.1.9
    python benchmarks/bench_rejax.py --rejax-python .venv-rejax/bin/python

Each side runs in its own interpreter (rejax in its virtual environment, rljax in this one),
back to back: ``jit(vmap(train))`` over the seeds is compiled ahead of time (compile time
reported apart) and run once; then each seed's trained policy plays ``--episodes`` greedy
episodes. CartPole-v1 counts as solved at a mean return >= 475. The hyperparameters are
rejax's configs/gymnax/cartpole.yaml (ppo), i.e. rljax's ``ppo`` preset "rejax": 5 envs x
100 steps, 5 epochs x 5 minibatches, lr 7.5e-4, max_grad_norm 0.5, 2x64 tanh, 1e5 steps.

rejax 0.1.3 unpacks the pre-1.0 gymnax step tuple ``(obs, state, reward, done, info)``;
gymnax 1.0 returns ``(obs, state, reward, terminated, truncated, info)``. :class:`DoneAdapter`
below (benchmark code only) gives rejax ``done = terminated | truncated``, so rejax treats the
500-step time limit as terminal (no bootstrap), which is what rejax did with pre-1.0 gymnax;
rljax bootstraps through truncations. rejax's in-training evaluation (every ``eval_freq``
steps, 128 episodes) is replaced by a no-op so both sides time training alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


def _timed_compile_and_run(fn, keys):
    import jax

    t = time.perf_counter()
    compiled = jax.jit(fn).lower(keys).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    return out, compile_s, time.perf_counter() - t


def _common(name, num_seeds, steps, compile_s, run_s, returns, eval_s, versions):
    import numpy as np

    mean = np.asarray(returns).mean(1)
    return {
        "library": name,
        "versions": versions,
        "num_seeds": num_seeds,
        "steps_per_seed": steps,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "train_steps_per_s": round(steps * num_seeds / run_s, 1),
        "eval_s": round(eval_s, 3),
        "eval_episodes": int(np.asarray(returns).shape[1]),
        "greedy_mean_returns": [round(float(x), 2) for x in mean],
        "solved_count": int(np.sum(mean >= SOLVED)),
        "median_return": round(float(np.median(mean)), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg_after": os.getloadavg(),
    }


def side_rejax(num_seeds: int, steps: int, episodes: int) -> dict:
    import gymnax
    import jax
    import jax.numpy as jnp
    from rejax import PPO
    from rejax.evaluate import evaluate_single

    env, env_params = gymnax.make("CartPole-v1")
    algo = PPO.create(
        env=DoneAdapter(env),
        env_params=env_params,
        total_timesteps=steps,
        eval_freq=steps,  # one block of ceil(steps / 500) iterations
        skip_initial_evaluation=True,
        **REJAX_CONFIG,
    )
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    iteration = algo.num_envs * algo.num_steps
    total = -(-steps // iteration) * iteration
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    (ts, _), compile_s, run_s = _timed_compile_and_run(jax.vmap(algo.train), keys)

    def greedy_returns(params, key):
        def act(obs, rng):
            logits = algo.actor.apply(
                params, obs[None], method=lambda m, x: m._action_dist(x).logits
            )
            return jnp.argmax(logits, -1).squeeze()

        keys = jax.random.split(key, episodes)
        run = jax.vmap(evaluate_single, in_axes=(None, None, None, 0, None))
        _, returns = run(act, algo.env, algo.env_params, keys, env_params.max_steps_in_episode)
        return returns

    eval_keys = jax.random.split(jax.random.PRNGKey(1), num_seeds)
    t = time.perf_counter()
    returns = jax.jit(jax.vmap(greedy_returns))(ts.actor_ts.params, eval_keys)
    returns = jax.block_until_ready(returns)
    eval_s = time.perf_counter() - t
    from importlib.metadata import version

    versions = {name: version(name) for name in ("rejax", "gymnax", "jax", "flax", "optax")}
    return _common("rejax", num_seeds, total, compile_s, run_s, returns, eval_s, versions)


def side_rljax(num_seeds: int, steps: int, episodes: int, profile: bool) -> dict:
    import jax
    import numpy as np

    from rljax import envs, evaluation
    from rljax.agents import AGENTS, ppo
    from rljax.io import experiment
    from rljax.rollout import rollout

    agent = AGENTS["ppo"]
    env, env_params = envs.make("CartPole-v1")
    spec = envs.spec(env, env_params)
    config = experiment.build_config(agent, "rejax", {"total_steps": steps}, spec)
    per_update = config.steps_per_update(spec)
    n = config.total_steps // per_update
    keys = experiment.run_keys(0, num_seeds)
    train = jax.vmap(agent.make_train(config, env, env_params))
    (state, _), compile_s, run_s = _timed_compile_and_run(train, keys)

    act = agent.make_act(config, env, env_params)
    params = agent.policy_params(state)

    def one(k, p):
        fn = lambda kk, pp, o: act(kk, pp, o, True)  # noqa: E731
        return evaluation.evaluate(k, fn, p, env, env_params, episodes)

    eval_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(np.arange(num_seeds))
    t = time.perf_counter()
    returns = jax.block_until_ready(jax.jit(jax.vmap(one))(eval_keys, params))
    eval_s = time.perf_counter() - t
    out = _common(
        "rljax", num_seeds, n * per_update, compile_s, run_s, returns, eval_s, experiment.versions()
    )
    if profile:
        out["profile"] = _profile_rljax(config, env, env_params, spec, keys, n, rollout, ppo)
        out["profile"]["full_train_run_s"] = out["run_s"]
    return out


def _profile_rljax(config, env, env_params, spec, keys, n, rollout, ppo) -> dict:
    """Rollout-only: the same ``n`` rollouts with the initial parameters, no learning."""
    import jax

    policy, env_action = ppo.make_policy(config, spec)

    def rollouts_only(key):
        s = ppo.init(key, config, env, env_params)

        def body(carry, k):
            env_state, obs = carry
            env_state, obs, traj = rollout(
                k, policy, s.params, env, env_params, env_state, obs, config.num_steps,
                env_action=env_action,
            )  # fmt: skip
            return (env_state, obs), traj.reward.sum()

        return jax.lax.scan(body, (s.env_state, s.obs), jax.random.split(key, n))[1]

    _, compile_s, run_s = _timed_compile_and_run(jax.vmap(rollouts_only), keys)
    return {"rollout_only_compile_s": round(compile_s, 3), "rollout_only_run_s": round(run_s, 3)}


def _run_side(python: str, side: str, args, env=None) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--side", side]
    cmd += ["--seeds", str(args.seeds), "--steps", str(args.steps)]
    cmd += ["--episodes", str(args.episodes)]
    if args.profile:
        cmd.append("--profile")
    load = os.getloadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{side} side failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["loadavg_before"] = load
    return result


def _rljax_python() -> tuple[str, dict | None]:
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists():
        return str(venv), None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return sys.executable, env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rejax-python", default=str(ROOT / ".venv-rejax" / "bin" / "python"))
    p.add_argument("--rljax-python", default=None, help="default: .venv, else this interpreter")
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--profile", action="store_true", help="also time rljax rollouts alone")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "rejax_comparison.json")
    p.add_argument("--side", choices=("rejax", "rljax"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.side == "rejax":
        print(json.dumps(side_rejax(args.seeds, args.steps, args.episodes)))
        return
    if args.side == "rljax":
        print(json.dumps(side_rljax(args.seeds, args.steps, args.episodes, args.profile)))
        return

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

    rljax_python, rljax_env = _rljax_python()
    if args.rljax_python:
        rljax_python = args.rljax_python
    rejax = _run_side(args.rejax_python, "rejax", args)
    rljax = _run_side(rljax_python, "rljax", args, rljax_env)
    summary = {
        "env": "CartPole-v1",
        "hyperparameters": REJAX_CONFIG | {"total_timesteps": args.steps},
        "adapter": (
            "rejax sees done = terminated | truncated (pre-1.0 gymnax tuple): time limits are "
            "terminal for rejax; rljax bootstraps through truncations. rejax's in-training "
            "evaluation is a no-op here."
        ),
        "speed_ratio_rljax_over_rejax": round(
            rljax["train_steps_per_s"] / rejax["train_steps_per_s"], 3
        ),
        "solved_count": {"rljax": rljax["solved_count"], "rejax": rejax["solved_count"]},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        "rejax": rejax,
        "rljax": rljax,
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("speed_ratio_rljax_over_rejax", "solved_count")}))
    for side in (rejax, rljax):
        print(
            f"{side['library']}: {side['train_steps_per_s']} steps/s "
            f"(compile {side['compile_s']} s, run {side['run_s']} s), "
            f"solved {side['solved_count']}/{side['num_seeds']}"
        )


if __name__ == "__main__":
    main()
