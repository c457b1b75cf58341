"""Statistical parity and speed of rljax's JAX LunarLander-v3 against Gymnasium's (Box2D).

For each action space (discrete LunarLander-v3, LunarLanderContinuous-v3) and each policy (a
uniform random policy; Gymnasium's heuristic controller, ``rljax.lunar_lander.heuristic_action``
on the JAX side) it runs the same number of episodes on both implementations and reports the
mean return, mean episode length and landing rate. A landing is an episode whose last reward
is +100, i.e. the lander came to rest (Box2D put it to sleep); the share of episodes with a
return >= 200 is reported too. Then raw environment steps per second: the JAX env under
``jit(vmap)`` + ``lax.scan`` with random actions at 1, 64 and 1024 envs (compile time apart),
next to ``gymnasium.vector.SyncVectorEnv`` at 1 and 64 envs: wall-clock steps per second and
steps per second of process CPU time (the second is steadier on a shared machine).

    python benchmarks/lunar_parity.py                 # 500 episodes each, writes the JSON
    python benchmarks/lunar_parity.py --episodes 100 --no-continuous --out lunar.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rljax import lunar_lander as ll  # noqa: E402

CHUNK = 100  # steps per jitted chunk; the episodes loop stops once every episode has ended


def _policy_fn(policy: str, continuous: bool):
    def act(key, obs):
        n = obs.shape[0]
        if policy == "heuristic":
            return jax.vmap(ll.heuristic_action, in_axes=(0, None))(obs, continuous)
        if continuous:
            return jax.random.uniform(key, (n, 2), jnp.float32, -1.0, 1.0)
        return jax.random.randint(key, (n,), 0, 4)

    return act


def jax_stats(policy: str, episodes: int, seed: int = 0, continuous: bool = False) -> dict:
    """First-episode statistics of ``episodes`` JAX envs run side by side."""
    env = ll.LunarLander(continuous=continuous)
    params = env.default_params
    act = _policy_fn(policy, continuous)
    n = episodes

    @jax.jit
    def start(key):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, n), params)
        z = jnp.zeros((n,), jnp.float32)
        return obs, state, jnp.zeros((n,), bool), z, jnp.zeros((n,), jnp.int32), z

    @jax.jit
    def chunk(key, carry):
        def body(carry, key):
            obs, state, done, ret, length, last = carry
            k_act, k_env = jax.random.split(key)
            action = act(k_act, obs)
            obs, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, n), state, action, params
            )
            alive = ~done
            ret = ret + jnp.where(alive, reward, 0.0)
            length = length + alive.astype(jnp.int32)
            last = jnp.where(alive, reward, last)
            return (obs, state, done | term | trunc, ret, length, last), None

        carry, _ = jax.lax.scan(body, carry, jax.random.split(key, CHUNK))
        return carry

    key = jax.random.key(seed)
    key, k0 = jax.random.split(key)
    t0 = time.perf_counter()
    carry = start(k0)
    steps = 0
    while steps < params.max_steps_in_episode:
        key, k = jax.random.split(key)
        carry = chunk(k, carry)
        steps += CHUNK
        if bool(carry[2].all()):
            break
    _, _, done, ret, length, last = jax.device_get(carry)
    assert done.all()
    return _summary(ret, length, last, time.perf_counter() - t0)


def gymnasium_stats(policy: str, episodes: int, seed: int = 0, continuous: bool = False) -> dict:
    """The same statistics from Gymnasium's LunarLander-v3 (episode i reset with seed+i)."""
    import gymnasium as gym
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env = gym.make("LunarLander-v3", continuous=continuous)
    env.action_space.seed(seed)
    rets, lengths, lasts = [], [], []
    t0 = time.perf_counter()
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, steps = 0.0, 0
        while True:
            action = heuristic(env, obs) if policy == "heuristic" else env.action_space.sample()
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            steps += 1
            if term or trunc:
                break
        rets.append(total)
        lengths.append(steps)
        lasts.append(float(reward))
    env.close()
    return _summary(np.array(rets), np.array(lengths), np.array(lasts), time.perf_counter() - t0)


def _summary(ret, length, last, seconds) -> dict:
    ret = np.asarray(ret, np.float64)
    n = len(ret)
    return {
        "episodes": n,
        "mean_return": float(ret.mean()),
        "stderr_return": float(ret.std(ddof=1) / np.sqrt(n)),
        "mean_length": float(np.mean(length)),
        "landing_rate": float(np.mean(np.asarray(last) == 100.0)),
        "crash_or_out_rate": float(np.mean(np.asarray(last) == -100.0)),
        "truncated_rate": float(np.mean(np.asarray(length) >= 1000)),
        "return_ge_200_rate": float(np.mean(ret >= 200.0)),
        "seconds": float(seconds),
    }


def jax_speed(num_envs: int, steps: int = 200) -> dict:
    env = ll.LunarLander()
    params = env.default_params

    def run(key, state):
        def body(state, key):
            k_act, k_env = jax.random.split(key)
            action = jax.random.randint(k_act, (num_envs,), 0, 4)
            _, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_envs), state, action, params
            )
            return state, reward.sum()

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    keys = jax.random.split(jax.random.key(0), num_envs)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.key(1), state).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.key(1), state))  # warm
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(jax.random.key(2), state))
    run_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "num_envs": num_envs,
        "steps_per_env": steps,
        "compile_s": compile_s,
        "steps_per_s": num_envs * steps / run_s,
        "steps_per_cpu_s": num_envs * steps / cpu_s,
    }


def gymnasium_speed(num_envs: int, steps: int = 2000) -> dict:
    import gymnasium as gym

    venv = gym.vector.SyncVectorEnv([lambda: gym.make("LunarLander-v3") for _ in range(num_envs)])
    venv.reset(seed=0)
    venv.action_space.seed(0)
    steps = max(steps // num_envs, 50)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        venv.step(venv.action_space.sample())
    run_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    venv.close()
    return {
        "num_envs": num_envs,
        "steps_per_env": steps,
        "steps_per_s": num_envs * steps / run_s,
        "steps_per_cpu_s": num_envs * steps / cpu_s,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-continuous", action="store_true", help="discrete env only")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument(
        "--no-parity", action="store_true", help="speed only (keeps the parity rows in --out)"
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("lunar_parity.json")))
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error("--episodes must be >= 2")

    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
        },
        "landing": "an episode whose last reward is +100 (the lander came to rest)",
        "parity": {},
        "speed": {},
    }
    if args.no_parity and Path(args.out).exists():
        result["parity"] = json.loads(Path(args.out).read_text())["parity"]
    variants = [] if args.no_parity else [False] if args.no_continuous else [False, True]
    for continuous in variants:
        name = "LunarLanderContinuous-v3" if continuous else "LunarLander-v3"
        for policy in ("random", "heuristic"):
            row = {
                "jax": jax_stats(policy, args.episodes, args.seed, continuous),
                "gymnasium": gymnasium_stats(policy, args.episodes, args.seed, continuous),
            }
            j, g = row["jax"], row["gymnasium"]
            row["relative_difference"] = {
                k: (j[k] - g[k]) / abs(g[k]) if g[k] else None
                for k in ("mean_return", "mean_length", "landing_rate")
            }
            result["parity"][f"{name}/{policy}"] = row
            print(
                f"{name:26s} {policy:9s} return jax {j['mean_return']:8.2f} gym "
                f"{g['mean_return']:8.2f} | length {j['mean_length']:6.1f} {g['mean_length']:6.1f}"
                f" | landing {j['landing_rate']:.3f} {g['landing_rate']:.3f}",
                flush=True,
            )
    if not args.no_speed:
        result["speed"]["jax"] = [jax_speed(n) for n in (1, 64, 1024)]
        result["speed"]["gymnasium_sync_vector"] = [gymnasium_speed(n) for n in (1, 64)]
        for row in result["speed"]["jax"] + result["speed"]["gymnasium_sync_vector"]:
            print(row, flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
