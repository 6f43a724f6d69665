"""One KL-regularised soft actor-critic core (`core`); algorithms are `AgentConfig` settings of it."""

from csil_lite.agents.core import Agent, AgentState, init_state, make_act, make_agent, make_update

__all__ = ["Agent", "AgentState", "init_state", "make_act", "make_agent", "make_update"]
