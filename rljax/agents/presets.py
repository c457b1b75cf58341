"""Named settings of each agent (``--preset NAME``): keyword overrides of its config's defaults.

Each preset says where its numbers come from. ``"default"`` is always empty: the config's own
defaults.
"""

from __future__ import annotations

from typing import Any

Presets = dict[str, dict[str, Any]]


# ---- a2c
A2C: Presets = {
    "default": {},
    # The Keras tutorial's hyperparameters (seeds 000/001).
    "keras": dict(
        mode="monte_carlo",
        num_envs=1,
        hidden_size=128,
        num_layers=1,
        activation="relu",
        shared_trunk=True,
        value_loss="huber",
        reduction="sum",
        lr=0.01,
        gamma=0.99,
        vf_coef=1.0,
        ent_coef=0.0,
        max_grad_norm=0.0,
        adam_eps=1e-7,
        anneal_lr=False,
        total_steps=500_000,
    ),
}
A2C["monte_carlo"] = A2C["keras"]
# ---- ddpg
DDPG: Presets = {
    "default": {},
    # A guess at seed 004 (the Keras DDPG tutorial): 256-unit ReLU nets, batch 64, buffer
    # 50k, actor lr 1e-3, critic lr 2e-3, noise 0.2 (absolute, 0.1 of Pendulum's half-range)
    # decaying over training, learning from the first full batch.
    "seed": dict(
        hidden_size=256,
        batch_size=64,
        buffer_size=50_000,
        learning_starts=64,
        lr=1e-3,
        critic_lr=2e-3,
        exploration="epsilon_decay",
        exploration_noise=0.1,
        final_exploration_noise=0.0,
    ),
    # rejax 0.1.3's network sizes, batch and update ratio (the speed comparison).
    "rejax": dict(hidden_size=64, num_layers=2, activation="silu", batch_size=256),
}


# ---- ppo
# fmt: off
PPO: Presets = {
    "default": {},  # the same as "cleanrl"
    # CleanRL's ppo.py on CartPole-v1 (Huang et al. 2022): 4 envs x 128 steps, 4 epochs x 4
    # minibatches, separate 2x64 tanh actor and critic, 5e5 env steps. (CleanRL lowers the
    # learning rate once per update; rljax lowers it every minibatch step.)
    "cleanrl": dict(
        total_steps=500_000, num_envs=4, num_steps=128, num_epochs=4, num_minibatches=4,
        hidden_size=64, num_layers=2, activation="tanh", anneal_lr=True,
        normalize_advantages=True, clip_value_loss=True, lr=2.5e-4, gamma=0.99,
        gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
        adam_eps=1e-5,
    ),
    # rejax's configs/gymnax/cartpole.yaml (ppo section). rejax clips gradients element-wise
    # and keeps separate actor and critic Adams; here one Adam with global-norm clipping.
    "rejax": dict(
        total_steps=100_000, num_envs=5, num_steps=100, num_epochs=5, num_minibatches=5,
        anneal_lr=False, clip_value_loss=True, lr=7.5e-4, max_grad_norm=0.5, adam_eps=1e-8,
    ),
    # LunarLander-v3 through the Gymnasium bridge (rl-baselines3-zoo's PPO LunarLander
    # settings): 16 envs x 1024 steps, 4 epochs of minibatches of 64, γ 0.999, λ 0.98,
    # constant lr 3e-4, 2x64 tanh.
    "lunarlander": dict(
        total_steps=1_000_000, num_envs=16, num_steps=1024, num_epochs=4, num_minibatches=256,
        anneal_lr=False, clip_value_loss=False, lr=3e-4, gamma=0.999, gae_lambda=0.98,
        clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
    ),
    # Pendulum-v1 (continuous actions): shorter horizon, rewards scaled by 0.1.
    "pendulum": dict(
        total_steps=1_000_000, num_envs=16, num_steps=128, num_epochs=10, num_minibatches=8,
        clip_value_loss=False, lr=1e-3, gamma=0.95, gae_lambda=0.95, ent_coef=0.0,
        reward_scale=0.1,
    ),
}
# fmt: on


# ---- reinforce
# fmt: off
REINFORCE: Presets = {
    # Tuned on CartPole-v1 and Acrobot-v1 (4 seeds each, lr in {3e-3, 1e-2, 3e-2} x
    # baseline_lr in {1e-2, 3e-2}): the seed's networks and batch, policy lr 1e-2 (3e-2
    # collapses some seeds, 3e-3 leaves half the Acrobot seeds at -500), both lrs annealed.
    "default": {},
    # Seed 002's hyperparameters: 64-unit nets, Adam 3e-2 for both, gamma 0.99, ~2000 steps.
    "seed": dict(
        num_envs=8, num_steps=250,
        hidden_size=64, num_layers=1, activation="relu",
        lr=3e-2, baseline_lr=3e-2, gamma=0.99, max_grad_norm=0.0, anneal_lr=False,
    ),
}
# fmt: on


# ---- td3
TD3: Presets = {
    "default": {},
    # rejax 0.1.3's TD3 network sizes, batch, update ratio and delay (the speed comparison).
    "rejax": dict(hidden_size=64, num_layers=2, activation="silu", batch_size=256),
}


# ---- td_actor_critic
# fmt: off
TD_ACTOR_CRITIC: Presets = {
    # Tuned on CartPole-v1. The seed's 1x128 ReLU nets plateau near 100 with 16 envs and
    # gamma 0.99 for every actor/critic lr and entropy pair tried (2/32 runs solved in 300k
    # steps); 2x64 tanh nets, 16 envs, gamma 0.99, actor 3e-4 / critic 1e-3, clipping at 1
    # and lr annealing solve reliably (32/32 seeds greedy-solved in 500k steps).
    "default": {},
    # Seed 003's hyperparameters: 128-unit nets, Adam 2e-4 for both, gamma 1.0, one env.
    # It learns but does not hold: 11/32 seeds greedy-solved after 1M steps on CartPole-v1.
    "seed": dict(
        num_envs=1,
        hidden_size=128, num_layers=1, activation="relu",
        lr=2e-4, critic_lr=2e-4, gamma=1.0, ent_coef=0.0, max_grad_norm=0.0, anneal_lr=False,
    ),
}
# fmt: on
# ---- sac
# fmt: off
SAC: Presets = {
    "default": {},  # Pendulum-v1: 2x64 ReLU nets, lr 3e-3, tau 0.02, batch 256
    # rejax 0.1.3's tuned Pendulum config (configs/gymnax/pendulum.yaml, sac section), for
    # the speed comparison: 1 env, batch 256, lr 0.01, buffer 10k, 256 warm-up steps, polyak
    # 0.98, 2x64 swish, normalised observations, 10k steps.
    "rejax": dict(
        total_steps=10_000, num_envs=1, batch_size=256, buffer_size=10_000, learning_starts=256,
        hidden_size=64, num_layers=2, activation="silu", lr=0.01, critic_lr=0.01,
        alpha_lr=0.01, tau=0.02, normalize_obs=True,
    ),
    # Discrete SAC on CartPole-v1 (Christodoulou 2019, exact expectations over the actions),
    # tuned here: the target entropy is 0.3 of the maximum log 2 (0.5 held the policy too
    # random to balance 500 steps); 8 seeds solved within 1e5 steps (BENCHMARKS.md).
    "cartpole": dict(
        total_steps=100_000, num_envs=1, batch_size=256, buffer_size=100_000,
        learning_starts=1_000, hidden_size=64, num_layers=2, lr=1e-3, critic_lr=1e-3,
        alpha_lr=1e-3, tau=0.01, target_entropy_ratio=0.3,
    ),
}
# fmt: on
