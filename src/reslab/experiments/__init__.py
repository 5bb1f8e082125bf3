"""The paper's experiments: degradation, CIFAR depths, layer responses, shortcut options; and
convolution vs attention (ResNet-20 against a ViT of the same compute, on growing subsets).

    from reslab.experiments import ExperimentSetup, QUICK, run_degradation
    run_degradation(ExperimentSetup(data="cifar10/", out=Path("exp/degradation"), preset=QUICK, seeds=(0, 1, 2)))

Each writes results.json (numbers, configs, seeds, code version), results.md and PNGs into `out`.
"""

from .common import FULL, PRESETS, QUICK, ExperimentSetup, Preset, RunResult, parse_seeds
from .conv_attention import run_conv_vs_attention
from .degradation import run_degradation, verdict
from .depths import PAPER_TABLE6, run_cifar_depths
from .layer_responses import layer_response_stds, run_layer_responses
from .shortcuts import PAPER_TABLE3, run_shortcuts

__all__ = [
    "ExperimentSetup", "Preset", "RunResult", "QUICK", "FULL", "PRESETS", "parse_seeds",
    "run_degradation", "verdict", "run_cifar_depths", "PAPER_TABLE6", "layer_response_stds",
    "run_layer_responses", "run_shortcuts", "PAPER_TABLE3", "run_conv_vs_attention",
]
