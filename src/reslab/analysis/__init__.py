"""Model analysis: per-layer parameters, MACs, FLOPs, activation memory and receptive fields,
and the design arithmetic of the ResNet paper and its neighbours (`explain`)."""

from .profile import LayerStats, Profile, parse_input_size, profile_model
from .receptive_field import ReceptiveField

__all__ = ["LayerStats", "Profile", "ReceptiveField", "parse_input_size", "profile_model"]
