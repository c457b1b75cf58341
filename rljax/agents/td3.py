"""Twin delayed DDPG (TD3): DDPG with three changes against Q-value overestimation.

Fujimoto et al. (2018), "Addressing Function Approximation Error in Actor-Critic Methods",
https://arxiv.org/abs/1802.09477:

1. clipped double Q-learning: two critics Q_φ1, Q_φ2 regress on one target
   y = r + γ·(1 − terminated)·min_k Q_φ'k(s', ã');
2. target policy smoothing: ã' = clip(μ_θ'(s') + clip(σ̃·ε, −c, c), low, high), ε ~ N(0, I);
3. delayed policy updates: the actor (on Q_φ1, by the DPG loss) and both targets (soft, τ)
   move once every ``policy_delay`` critic updates.

The algorithm is the DDPG engine of :mod:`rljax.agents.ddpg` (``num_critics`` critics with the
minimum target, ``target_noise``/``target_noise_clip``, ``policy_delay``) with TD3's settings:
this module only sets them. One update is ``policy_delay`` env steps and critic steps followed
by one actor step and the target updates; the delay is unrolled statically, so no ``lax.cond``
(no select under ``vmap``) decides when the actor moves. As in the paper, both targets move
only with the actor (acme moves the critic targets every step).
"""

from __future__ import annotations

from flax import struct

from rljax import envs
from rljax.agents import base, ddpg, presets


@struct.dataclass
class TD3Config(ddpg.DDPGConfig):
    """:class:`~rljax.agents.ddpg.DDPGConfig` with TD3's defaults (σ̃, c in half-range units)."""

    num_critics: int = base.static(2, base.POSITIVE)
    policy_delay: int = base.static(2, base.POSITIVE)
    target_noise: float = base.leaf(0.2, base.NON_NEGATIVE)
    target_noise_clip: float = base.leaf(0.5, base.NON_NEGATIVE)

    agent_name = "td3"

    def validate(self, spec: envs.EnvSpec) -> None:
        """DDPG's checks, plus at least two critics (TD3's minimum needs a pair)."""
        super().validate(spec)
        if self.num_critics < 2:
            raise base.ConfigError(f"--num-critics must be >= 2 for td3, got {self.num_critics}")


TD3State = ddpg.DDPGState  # critic_params / target_critic_params hold the twin pair [2, ...]

AGENT = ddpg.AGENT._replace(name="td3", config=TD3Config, presets=presets.TD3)
