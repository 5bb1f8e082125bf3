"""explain's figures: each counted on modules, compared with the formulas and the papers' numbers."""

from __future__ import annotations

import pytest

from reslab.analysis import explain


@pytest.fixture(scope="module")
def sections():
    return {s.__name__: s for s in explain.SECTIONS}


def test_bottleneck_against_two_3x3(sections):
    s = sections["bottleneck_vs_basic"]()
    assert s.fact("bottleneck weights").counted == 69_632  # 256*64 + 9*64*64 + 64*256
    assert s.fact("two 3x3 weights").counted == 1_179_648  # 2 * 9 * 256^2
    assert round(s.fact("ratio (fewer weights)").counted, 2) == 16.94
    assert s.fact("bottleneck MACs").counted == 69_632 * 56 * 56


def test_three_3x3_against_one_7x7(sections):
    s = sections["stacked_3x3_vs_7x7"](channels=32, size=10)
    assert s.fact("3x3 x3 receptive field").counted == 7 == s.fact("7x7 receptive field").counted
    assert s.fact("3x3 x3 weights").counted == 27 * 32 * 32
    assert s.fact("7x7 weights").counted == 49 * 32 * 32


def test_depthwise_separable_ratio(sections):
    s = sections["depthwise_separable"](256, 256, 56)
    assert s.fact("standard MACs").counted == 56 * 56 * 9 * 256 * 256
    assert s.fact("separable weights").counted == 9 * 256 + 256 * 256
    assert s.fact("MAC ratio").counted == pytest.approx(1 / 256 + 1 / 9, rel=1e-12)


def test_conv_layer_cost(sections):
    s = sections["conv_cost"](c_in=3, c_out=64, k=7, size=224, stride=2)  # ResNet's stem, with a bias
    assert s.fact("parameters").counted == 64 * (3 * 49 + 1) == 9_472
    assert s.fact("MACs").counted == 112 * 112 * 64 * 3 * 49 == 118_013_952


def test_option_a_shortcut_is_free(sections):
    s = sections["shortcut_options"]()
    assert s.fact("option A parameters").counted == 0 and s.fact("option A MACs").counted == 0
    assert s.fact("option B MACs").counted == 16 * 16 * 16 * 32


def test_v1_against_v1_5(sections):
    s = sections["resnet50_variants"]()
    assert f"{s.fact('v1 GMACs').counted:.3g}" == "3.86"
    assert f"{s.fact('v1.5 GMACs').counted:.3g}" == "4.09"
    assert s.fact("v1.5 receptive field").counted == 427


def test_every_formula_matches_its_count():
    for section in explain.explain_all():
        for fact in section.facts:
            assert fact.matches in (True, None), (section.title, fact)


def test_attention_against_a_3x3_conv(sections):
    s = sections["attention_vs_convolution"](dim=64, heads=2, sizes=(4, 16))
    assert all(f.matches is not False for f in s.facts)
    # counted on the modules: Q K^T and weights x V are 2 N^2 D, the rest 4 N D^2
    assert s.fact("N=16 (4x4): attention MACs").counted == 4 * 16 * 64**2 + 2 * 16**2 * 64
    assert s.fact("N=256: of which Q K^T and weights x V").counted == 2 * 256**2 * 64
    assert s.fact("N=256: 3x3 conv MACs").counted == 9 * 256 * 64**2
    assert s.fact("N=2.5 D=160: attention / conv MACs").counted == pytest.approx(1.0)
    assert s.fact("attention receptive field (one layer, 0 = global)").counted == 0
    assert s.fact("3x3 conv receptive field (one layer)").counted == 3


def test_kernel_size_and_vit_budget(sections):
    s = sections["kernel_size_vs_attention"](dim=32, side=8, kernels=(3, 5))
    assert all(f.matches for f in s.facts)
    assert s.fact("5x5 conv receptive field").counted == 5
    v = sections["vit_mac_budget"]()
    assert round(v.fact("224 px (197 tokens): GMACs").counted, 3) == 17.564  # torchvision's published figure
    assert round(v.fact("384 px (577 tokens): GMACs").counted, 3) == 55.484
    assert 0.03 < v.fact("224 px: attention's share").counted < v.fact("384 px: attention's share").counted < 0.15
    assert v.fact("224 px: Q K^T and weights x V (GMACs)").matches
