"""One KL-regularised soft actor-critic core (`core`); algorithms are choices of its components (`components`).

`state` holds one `TrainState` per network; `losses` holds the online phase's equations, one function each.
"""

from csil_lite.agents.core import Agent, init_state, make_act, make_agent, make_update
from csil_lite.agents.state import AgentState, TrainState

__all__ = ["Agent", "AgentState", "TrainState", "init_state", "make_act", "make_agent", "make_update"]
