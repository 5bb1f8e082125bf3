"""The design arithmetic behind ResNets and their neighbours (and what attention changes), every
figure counted on real modules.

Each section builds the `nn.Module`s it talks about, counts their parameters, MACs and receptive
fields with `profile_model`, and sets the count beside the closed-form formula, so the prose can
never drift from the code: `explain_all()` returns the sections, `render()` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .profile import profile_model


@dataclass(frozen=True)
class Fact:
    label: str
    counted: float  # measured on the module by the profiler
    formula: float | None = None  # the closed form, where there is one
    expression: str = ""  # the formula as written

    @property
    def matches(self) -> bool | None:
        return None if self.formula is None else abs(self.counted - self.formula) <= 1e-9 * max(1.0, abs(self.formula))

    def as_dict(self) -> dict:
        return {"label": self.label, "counted": self.counted, "formula": self.formula, "expression": self.expression, "matches": self.matches}


@dataclass(frozen=True)
class Section:
    title: str
    facts: list[Fact] = field(default_factory=list)
    conclusion: str = ""

    def fact(self, label: str) -> Fact:
        return next(f for f in self.facts if f.label == label)

    def as_dict(self) -> dict:
        return {"title": self.title, "facts": [f.as_dict() for f in self.facts], "conclusion": self.conclusion}


def count(module: nn.Module, input_size: tuple[int, int, int]):
    """(params, MACs, receptive field) of `module` on one input, counted on the meta device."""
    p = profile_model(module, input_size)
    return p.params, p.macs, p.receptive_field


def conv_cost(c_in: int = 64, c_out: int = 128, k: int = 3, size: int = 56, stride: int = 1) -> Section:
    """One conv layer: C'(C K K + 1) parameters and H'W'C' C K K MACs."""
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, device="meta")
    params, macs, _ = count(conv, (c_in, size, size))
    out = (size + 2 * (k // 2) - k) // stride + 1
    return Section(
        f"A conv layer's cost: C={c_in}, C'={c_out}, K={k}, stride {stride} at {size}x{size} (output {out}x{out})",
        [
            Fact("parameters", params, c_out * (c_in * k * k + 1), "C'(C K K + 1)"),
            Fact("MACs", macs, out * out * c_out * c_in * k * k, "H'W'C' C K K"),
            Fact("FLOPs", 2 * macs, 2 * out * out * c_out * c_in * k * k, "2 x MACs (bias additions not counted)"),
        ],
        "Parameters do not depend on the image size; MACs scale with the output area.",
    )


def bottleneck_vs_basic(width: int = 256, mid: int = 64, size: int = 56) -> Section:
    """ResNet-50's bottleneck (1x1 64, 3x3 64, 1x1 256) against two 3x3 256-channel convs."""
    bottleneck = nn.Sequential(
        nn.Conv2d(width, mid, 1, bias=False),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False),
        nn.Conv2d(mid, width, 1, bias=False),
    ).to("meta")
    two_3x3 = nn.Sequential(
        nn.Conv2d(width, width, 3, padding=1, bias=False), nn.Conv2d(width, width, 3, padding=1, bias=False)
    ).to("meta")
    pb, mb, _ = count(bottleneck, (width, size, size))
    p2, m2, _ = count(two_3x3, (width, size, size))
    return Section(
        f"Bottleneck block vs two 3x3 convs, {width} channels at {size}x{size}",
        [
            Fact("bottleneck weights", pb, width * mid + mid * mid * 9 + mid * width, "C m + 9 m^2 + m C (m = C/4)"),
            Fact("two 3x3 weights", p2, 2 * 9 * width * width, "2 x 9 C^2"),
            Fact("ratio (fewer weights)", p2 / pb, (2 * 9 * width * width) / (width * mid + mid * mid * 9 + mid * width)),
            Fact("bottleneck MACs", mb, size * size * (width * mid + mid * mid * 9 + mid * width), "H W x weights"),
            Fact("two 3x3 MACs", m2, size * size * 2 * 9 * width * width, "H W x weights"),
        ],
        "The 1x1 convs shrink then restore the width, so the 3x3 works on a quarter of the channels: "
        "that is what made 50-152 layer ResNets affordable.",
    )


def stacked_3x3_vs_7x7(channels: int = 64, size: int = 56) -> Section:
    """VGG's argument: three 3x3 convs see 7x7 like one 7x7, with 27C^2 instead of 49C^2 weights."""
    three = nn.Sequential(
        *[m for _ in range(3) for m in (nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU())]
    ).to("meta")
    one = nn.Sequential(nn.Conv2d(channels, channels, 7, padding=3, bias=False), nn.ReLU()).to("meta")
    p3, m3, rf3 = count(three, (channels, size, size))
    p7, m7, rf7 = count(one, (channels, size, size))
    return Section(
        f"Three stacked 3x3 convs vs one 7x7 conv, C={channels}",
        [
            Fact("3x3 x3 receptive field", rf3.size[0], 7, "1 + 3 x (3 - 1)"),
            Fact("7x7 receptive field", rf7.size[0], 7, "7"),
            Fact("3x3 x3 weights", p3, 27 * channels**2, "3 x 9 C^2 = 27 C^2"),
            Fact("7x7 weights", p7, 49 * channels**2, "49 C^2"),
            Fact("weight ratio", p3 / p7, 27 / 49, "27/49"),
            Fact("3x3 x3 MACs", m3, 27 * channels**2 * size * size, "27 C^2 H W"),
            Fact("7x7 MACs", m7, 49 * channels**2 * size * size, "49 C^2 H W"),
        ],
        "Same field of view for 55% of the weights, and three non-linearities instead of one (Simonyan & Zisserman).",
    )


def depthwise_separable(c_in: int = 256, c_out: int = 256, size: int = 56) -> Section:
    """MobileNet's factorisation: a 3x3 depthwise conv then a 1x1 pointwise conv."""
    standard = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, device="meta")
    separable = nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1, bias=False)
    ).to("meta")
    ps, ms, _ = count(standard, (c_in, size, size))
    pd, md, _ = count(separable, (c_in, size, size))
    return Section(
        f"Depthwise-separable vs standard 3x3 conv, C={c_in}, C'={c_out} at {size}x{size}",
        [
            Fact("standard weights", ps, 9 * c_in * c_out, "9 C C'"),
            Fact("separable weights", pd, 9 * c_in + c_in * c_out, "9 C + C C'"),
            Fact("standard MACs", ms, size * size * 9 * c_in * c_out, "H W 9 C C'"),
            Fact("separable MACs", md, size * size * (9 * c_in + c_in * c_out), "H W (9 C + C C')"),
            Fact("MAC ratio", md / ms, 1 / c_out + 1 / 9, "1/C' + 1/9"),
        ],
        f"About {ms / md:.1f}x fewer MACs: MobileNetV2 and EfficientNet-Lite build on this.",
    )


def shortcut_options(in_ch: int = 16, out_ch: int = 32, size: int = 32) -> Section:
    """The paper's CIFAR option A (zero padding) against option B (1x1 projection + BN)."""
    from ..models.resnet import ZeroPadShortcut

    option_a = ZeroPadShortcut(in_ch, out_ch, 2)
    option_b = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch)).to("meta")
    pa, ma, _ = count(option_a, (in_ch, size, size))
    pb, mb, _ = count(option_b, (in_ch, size, size))
    out = size // 2
    return Section(
        f"Shortcut options where the shape changes: {in_ch}->{out_ch} channels, stride 2 at {size}x{size}",
        [
            Fact("option A parameters", pa, 0, "none: strided identity + zero channels"),
            Fact("option A MACs", ma, 0, "none"),
            Fact("option B parameters", pb, in_ch * out_ch + 2 * out_ch, "C C' (1x1 conv) + 2 C' (BN)"),
            Fact("option B MACs", mb, out * out * in_ch * out_ch, "H'W' C C'"),
        ],
        "Option A adds nothing to learn, which is why the paper's CIFAR nets (0.27M-1.7M parameters) are "
        "exactly as big as their plain twins.",
    )


def resnet50_variants() -> Section:
    """v1 (stride in the first 1x1) vs v1.5 (stride in the 3x3, torchvision's) ResNet-50."""
    from .zoo import profile_by_name

    v15 = profile_by_name("resnet50", variant="v1.5")
    v1 = profile_by_name("resnet50", variant="v1")
    # the three downsampling blocks' first 1x1 conv runs at the input resolution in v1.5: in v1 it
    # sees the strided (quarter-area) grid, the rest is equal
    delta = sum((s * s - (s // 2) ** 2) * c_in * mid for c_in, mid, s in ((256, 128, 56), (512, 256, 28), (1024, 512, 14)))
    return Section(
        "ResNet-50 v1 (stride in the 1x1, the paper's) vs v1.5 (stride in the 3x3, torchvision's)",
        [
            Fact("v1 GMACs", v1.macs / 1e9, None, "paper: 3.8 x 10^9 FLOPs (= multiply-adds)"),
            Fact("v1.5 GMACs", v15.macs / 1e9, None, "torchvision: 4.09 GFLOPS (= MACs)"),
            Fact("difference (MACs)", v15.macs - v1.macs, delta, "sum over 3 blocks of (H^2 - (H/2)^2) C m"),
            Fact("same parameters", v15.params - v1.params, 0, "only where the stride sits moves"),
            Fact("v1 receptive field", v1.receptive_field.size[0], None),
            Fact("v1.5 receptive field", v15.receptive_field.size[0], None),
        ],
        "v1.5 costs 6% more MACs and is about 0.5% more accurate on ImageNet: the strided 3x3 sees every "
        "input position, while a strided 1x1 discards three quarters of them.",
    )


class TokenAttention(nn.Module):
    """One self-attention layer over the positions of a (B, D, H, W) map: each position is a token."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        from ..models.vit import SelfAttention

        self.attention = SelfAttention(dim, num_heads)

    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, D)
        return self.attention(tokens)


def attention_vs_convolution(dim: int = 768, heads: int = 12, sizes: tuple[int, ...] = (14, 56)) -> Section:
    """Cost as a function of tokens: a self-attention layer against a 3x3 conv of the same width.

    Attention: 4 D^2 weights (Q, K, V and output projections, whatever the image size) and
    4 N D^2 + 2 N^2 D MACs on N tokens; a 3x3 conv: 9 D^2 weights and 9 N D^2 MACs. The N^2 term
    (Q K^T and weights x V) is what makes attention global, and what makes it expensive on many tokens.
    """
    facts = []
    attention = TokenAttention(dim, heads).to("meta")
    conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False, device="meta")
    for side in sizes:
        n = side * side
        pa, ma, rfa = count(attention, (dim, side, side))
        pc, mc, rfc = count(conv, (dim, side, side))
        products = sum(r.macs for r in profile_model(attention, (dim, side, side)).layers if r.type == "bmm")
        facts += [
            Fact(f"N={n} ({side}x{side}): attention MACs", ma, 4 * n * dim**2 + 2 * n * n * dim, "4 N D^2 + 2 N^2 D"),
            Fact(f"N={n}: of which Q K^T and weights x V", products, 2 * n * n * dim, "2 N^2 D"),
            Fact(f"N={n}: 3x3 conv MACs", mc, 9 * n * dim**2, "9 N D^2"),
            Fact(f"N={n}: attention / conv MACs", ma / mc, (4 * dim + 2 * n) / (9 * dim), "(4 D + 2 N) / 9 D"),
        ]
    # where the two cost the same: 4 N D^2 + 2 N^2 D = 9 N D^2 at N = 2.5 D tokens (a 1 x N row of them)
    even = int(2.5 * dim)
    _, ma_even, _ = count(attention, (dim, 1, even))
    _, mc_even, _ = count(conv, (dim, 1, even))
    facts += [
        Fact(f"N=2.5 D={even}: attention / conv MACs", ma_even / mc_even, 1.0, "equal at N = 2.5 D"),
        Fact("attention weights (+ biases)", pa, 4 * dim**2 + 4 * dim, "4 D^2 + 4 D, for any N"),
        Fact("3x3 conv weights", pc, 9 * dim**2, "9 D^2"),
        Fact("3x3 conv receptive field (one layer)", rfc.size[0], 3, "K"),
        Fact("attention receptive field (one layer, 0 = global)", 0 if rfa is None else rfa.size[0], 0, "the whole image"),
    ]
    return Section(
        f"Self-attention vs a 3x3 conv, width D={dim} ({heads} heads), as a function of the tokens N",
        facts,
        "Attention's weights are computed from the input and reach every position after one layer; a conv's are "
        "learned constants that see 3x3. Its cost is linear in N up to N ~ 2D, then quadratic: ViT-B's 196 tokens "
        "are cheap, a 56x56 ResNet stage (3136 tokens) is not, which is why ViTs cut the image into 16x16 patches.",
    )


def kernel_size_vs_attention(dim: int = 64, side: int = 32, kernels: tuple[int, ...] = (1, 3, 5, 7)) -> Section:
    """Cost as a function of kernel size: a conv's weights and MACs grow with K^2, its field by K - 1 per layer."""
    facts = []
    n = side * side
    for k in kernels:
        conv = nn.Conv2d(dim, dim, k, padding=k // 2, bias=False, device="meta")
        p, m, rf = count(conv, (dim, side, side))
        facts += [
            Fact(f"{k}x{k} conv weights", p, k * k * dim**2, "K^2 D^2"),
            Fact(f"{k}x{k} conv MACs", m, n * k * k * dim**2, "N K^2 D^2"),
            Fact(f"{k}x{k} conv receptive field", rf.size[0], k, "K"),
        ]
    pa, ma, _ = count(TokenAttention(dim, max(1, dim // 64)).to("meta"), (dim, side, side))
    facts += [
        Fact("attention weights (+ biases)", pa, 4 * dim**2 + 4 * dim, "4 D^2 + 4 D"),
        Fact("attention MACs", ma, 4 * n * dim**2 + 2 * n * n * dim, "4 N D^2 + 2 N^2 D"),
        Fact(f"conv kernel with attention's MACs on {side}x{side}", (ma / (n * dim**2)) ** 0.5,
             ((4 * dim + 2 * n) / dim) ** 0.5, "K = sqrt(4 + 2 N / D)"),
    ]
    return Section(
        f"Kernel size: a KxK conv against attention, width D={dim} on {side}x{side} ({n} tokens)",
        facts,
        "A conv buys a wider view with K^2 more weights and MACs; attention's view is the whole image for 4 D^2 "
        "weights, paid for in MACs that grow with the number of tokens. With few channels and many positions (a "
        "CIFAR ResNet's first stage) attention costs as much as a very large kernel.",
    )


def vit_mac_budget() -> Section:
    """Where ViT-B/16's 17.56 GMACs go, counted by the profiler, and how the attention share grows with the image."""
    from .zoo import profile_by_name

    def split(profile):
        attention = sum(r.macs for r in profile.layers if r.type == "bmm")
        return attention, profile.macs - attention

    facts, shares = [], []
    for size in (224, 384):
        p = profile_by_name("vit_b_16", image_size=size)
        n = (size // 16) ** 2 + 1
        attention, rest = split(p)
        shares.append(attention / p.macs)
        facts += [
            Fact(f"{size} px ({n} tokens): GMACs", p.macs / 1e9, None, "torchvision: 17.56 at 224, 55.48 at 384"),
            Fact(f"{size} px: Q K^T and weights x V (GMACs)", attention / 1e9, 12 * 2 * n * n * 768 / 1e9, "L 2 N^2 D"),
            Fact(f"{size} px: attention's share", attention / p.macs, None, "of all MACs"),
            Fact(f"{size} px: linear layers and patch embedding (GMACs)", rest / 1e9, None),
        ]
    r50 = profile_by_name("resnet50")
    vit = profile_by_name("vit_b_16")
    facts.append(Fact("ResNet-50 at 224 (GMACs)", r50.macs / 1e9, None, "for scale"))
    return Section(
        "ViT-B/16's compute: the linear layers dominate at 224 px; the N^2 attention grows with the image",
        facts,
        f"At 224 px only {shares[0]:.0%} of ViT-B/16's MACs are attention's products; at 384 px (577 tokens) "
        f"{shares[1]:.0%}. Its {vit.macs / 1e9:.1f} GMACs are {vit.macs / r50.macs:.1f}x ResNet-50's for about 5 points "
        "more ImageNet top-1 (81.1% vs 76.1%, torchvision's published weights).",
    )


SECTIONS = [
    conv_cost,
    bottleneck_vs_basic,
    stacked_3x3_vs_7x7,
    depthwise_separable,
    shortcut_options,
    resnet50_variants,
    attention_vs_convolution,
    kernel_size_vs_attention,
    vit_mac_budget,
]


def explain_all() -> list[Section]:
    return [make() for make in SECTIONS]


def render(sections: list[Section], console) -> None:
    from rich.table import Table

    for s in sections:
        table = Table(title=s.title, caption=s.conclusion, title_justify="left", caption_justify="left")
        table.add_column("quantity")
        table.add_column("counted", justify="right")
        table.add_column("formula", justify="right")
        table.add_column("", justify="center")
        for f in s.facts:
            check = {True: "[green]=[/]", False: "[red]![/]", None: ""}[f.matches]
            formula = f"{_fmt(f.formula)}  [dim]{f.expression}[/]" if f.formula is not None else f"[dim]{f.expression}[/]"
            table.add_row(f.label, _fmt(f.counted), formula, check)
        console.print(table)
        console.print()


def _fmt(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.4g}"
