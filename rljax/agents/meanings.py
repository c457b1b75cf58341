"""The one-line meanings of the config fields that several agents share.

``--help`` and the API reference show them for a field that declares no ``help=`` of its own
(:func:`rljax.agents.fields.meaning`).
"""

MEANINGS = {
    "normalize_obs": "normalise observations by their running mean and variance (per seed)",
    "scale_rewards": "learning sees rewards divided by the std of the discounted return",
    "total_steps": "env steps per seed (rounded down to whole updates)",
    "num_envs": "parallel environments per seed",
    "num_steps": "env steps per environment per update",
    "hidden_size": "units per hidden layer",
    "num_layers": "hidden layers",
    "activation": "hidden-layer activation",
    "normalize_advantages": "standardise advantages over the batch",
    "anneal_lr": "decay the learning rate linearly to 0 over training",
    "lr": "learning rate (the actor's, where the critic has its own)",
    "critic_lr": "critic learning rate",
    "gamma": "discount factor γ",
    "gae_lambda": "GAE λ (1: Monte-Carlo advantages, 0: one-step TD)",
    "vf_coef": "weight of the value loss",
    "ent_coef": "weight of the entropy bonus",
    "max_grad_norm": "clip gradients to this global norm (<= 0: no clipping)",
    "adam_eps": "Adam's ε",
    "buffer_size": "replay buffer capacity (transitions per seed)",
    "batch_size": "replay minibatch size",
    "learning_starts": "env steps of uniformly random actions before learning starts",
    "num_critics": "critics in the ensemble (the target takes their minimum)",
    "tau": "soft target-network update rate τ",
    "policy_delay": "critic updates per actor and target update (TD3: 2)",
    "target_noise": "target policy smoothing σ, in action half-ranges (TD3)",
    "target_noise_clip": "target smoothing noise clipped to ±this, in half-ranges (TD3)",
}
