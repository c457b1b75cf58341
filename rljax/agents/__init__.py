"""Agents: one module per algorithm, each composing the shared modules.

``AGENTS`` maps an ``--agent`` name to its :class:`~rljax.agents.protocol.Agent` record.
"""

from rljax.agents import a2c, ddpg, ppo, reinforce, sac, td3, td_actor_critic
from rljax.agents.fields import ConfigError, DiscountWarning
from rljax.agents.protocol import Agent

AGENTS: dict[str, Agent] = {
    m.AGENT.name: m.AGENT for m in (a2c, reinforce, td_actor_critic, ddpg, td3, ppo, sac)
}

__all__ = [
    "AGENTS",
    "Agent",
    "ConfigError",
    "DiscountWarning",
    "a2c",
    "ddpg",
    "ppo",
    "reinforce",
    "sac",
    "td3",
    "td_actor_critic",
]
