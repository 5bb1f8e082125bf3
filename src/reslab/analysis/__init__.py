"""Model analysis: per-layer parameters, MACs, FLOPs, activation memory and receptive fields
(`profile_model`, `profile_by_name`, `zoo_summary`), and the design arithmetic of the ResNet paper
and its neighbours (`explain_all`)."""

from .explain import explain_all
from .ops import skip_meta_init
from .profile import LayerStats, Profile, parse_input_size, profile_model
from .receptive_field import ReceptiveField
from .zoo import profile_by_name, zoo_summary

__all__ = [
    "LayerStats",
    "Profile",
    "ReceptiveField",
    "explain_all",
    "parse_input_size",
    "profile_by_name",
    "profile_model",
    "skip_meta_init",
    "zoo_summary",
]
