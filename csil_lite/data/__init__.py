"""Demonstration data: the transition container, robomimic HDF5 files, scripted and MimicGen-style generators."""

from csil_lite.data.transitions import Transitions, episodes_to_transitions, flatten_obs

__all__ = ["Transitions", "episodes_to_transitions", "flatten_obs"]
