"""One KL-regularised soft actor-critic core (`core`); algorithms are choices of its components (`components`,
`critic`), made from a configuration by `csil_lite.assembly`.

`state` holds one `TrainState` per network; the online phase's equations are in `csil_lite.losses`.
"""

from csil_lite.agents.core import Agent, init_state, make_act, make_update
from csil_lite.agents.critic import Critic
from csil_lite.agents.state import AgentState, TrainState

__all__ = ["Agent", "AgentState", "Critic", "TrainState", "init_state", "make_act", "make_update"]
