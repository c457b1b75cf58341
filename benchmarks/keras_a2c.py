"""The Keras "Actor Critic Method" tutorial's CartPole agent, timed to solve CartPole-v1.

The reference point for the default experiment's time to solve. The agent is the tutorial's
(keras.io/examples/rl/actor_critic_cartpole): a shared 128-unit ReLU layer with softmax actor
and linear critic heads, one episode per update, Monte-Carlo returns standardised over the
episode, loss Σ −log π(a|s)·(G − V) + Σ Huber(G − V), Adam lr 0.01, γ 0.99; run as the
tutorial runs it (eager TensorFlow, one step at a time). It stops as the tutorial does, when
its running reward (an EMA of episode returns with weight 0.05) passes the threshold, with
CartPole-v1's 475 in place of CartPole-v0's 195; the mean of the last 100 episodes at that
moment is recorded too (rljax's own criterion, which the EMA reaches earlier).

It needs TensorFlow, which rljax does not depend on, so it runs in its own environment::

    python3 -m venv .venv-keras
    .venv-keras/bin/pip install tensorflow-cpu "gymnasium>=1.1,<1.4"
    .venv-keras/bin/python benchmarks/keras_a2c.py --seeds 0 1 2 3 4 \\
        --out benchmarks/keras_a2c.json

Each seed runs in its own process (so every seed pays TensorFlow's start-up, as a user would)
and is stopped after ``--max-episodes`` episodes if it has not solved by then.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

THRESHOLD, WINDOW = 475.0, 100


def one_seed(seed: int, max_episodes: int, max_seconds: float) -> dict:
    """Train the tutorial's agent from ``seed`` until solved; times from process start."""
    start = time.perf_counter()
    import gymnasium as gym
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    np.random.seed(seed)
    tf.random.set_seed(seed)
    gamma, eps = 0.99, np.finfo(np.float32).eps.item()
    env = gym.make("CartPole-v1")
    inputs = layers.Input(shape=(4,))
    common = layers.Dense(128, activation="relu")(inputs)
    action = layers.Dense(2, activation="softmax")(common)
    critic = layers.Dense(1)(common)
    model = keras.Model(inputs=inputs, outputs=[action, critic])
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    huber_loss = keras.losses.Huber(reduction="sum")
    window: deque[float] = deque(maxlen=WINDOW)
    running_reward, steps = 0.0, 0
    ready_s = time.perf_counter() - start
    solved, episode = False, 0
    for episode in range(1, max_episodes + 1):
        state, _ = env.reset(seed=seed * 100_003 + episode)
        probs_history, values, rewards = [], [], []
        with tf.GradientTape() as tape:
            while True:
                action_probs, value = model(tf.expand_dims(tf.convert_to_tensor(state), 0))
                values.append(value[0, 0])
                a = np.random.choice(2, p=np.squeeze(action_probs))
                probs_history.append(tf.math.log(action_probs[0, a]))
                state, reward, terminated, truncated, _ = env.step(a)
                rewards.append(reward)
                steps += 1
                if terminated or truncated:
                    break
            returns, discounted = [], 0.0
            for r in rewards[::-1]:
                discounted = r + gamma * discounted
                returns.insert(0, discounted)
            returns = np.array(returns)
            returns = ((returns - returns.mean()) / (returns.std() + eps)).tolist()
            actor_losses, critic_losses = [], []
            for log_prob, value, ret in zip(probs_history, values, returns, strict=True):
                actor_losses.append(-log_prob * (ret - value))
                critic_losses.append(huber_loss(tf.expand_dims(value, 0), tf.expand_dims(ret, 0)))
            loss = sum(actor_losses) + sum(critic_losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        episode_return = float(sum(rewards))
        window.append(episode_return)
        running_reward = 0.05 * episode_return + 0.95 * running_reward
        solved = running_reward > THRESHOLD
        if solved or time.perf_counter() - start > max_seconds:
            break
    row = {"seed": seed, "solved": bool(solved), "episodes": episode, "env_steps": steps}
    elapsed = round(time.perf_counter() - start, 2)
    if solved:
        row["time_to_solve_s"] = elapsed
        row["mean_last_100_at_stop"] = round(float(np.mean(window)), 1)
    else:
        row["time_s"] = elapsed
    return {**row, "startup_s": round(ready_s, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--max-episodes", type=int, default=3000)
    p.add_argument("--max-seconds", type=float, default=600.0, help="give a seed up after this")
    p.add_argument("--out", type=Path, default=Path("benchmarks/keras_a2c.json"))
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:  # child process: one seed, JSON on stdout
        print(json.dumps(one_seed(args.one, args.max_episodes, args.max_seconds)))
        return 0
    rows = []
    for seed in args.seeds:
        cmd = [sys.executable, __file__, "--one", str(seed), "--max-seconds", str(args.max_seconds)]
        proc = subprocess.run(
            [*cmd, "--max-episodes", str(args.max_episodes)],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    import tensorflow as tf

    times = sorted(r["time_to_solve_s"] for r in rows if r["solved"])
    result = {
        "what": "Keras actor-critic tutorial, CartPole-v1, one seed per process, time from "
        "process start until the tutorial's running reward (EMA 0.05) passes 475",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
        "seeds": rows,
        "solved": f"{len(times)}/{len(rows)}",
        "median_time_to_solve_s": times[len(times) // 2] if times else None,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
