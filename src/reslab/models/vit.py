"""Vision Transformers (Dosovitskiy et al. 2020), torchvision's layout, and small ViTs for 32 px.

An image is cut into P x P patches, each projected to a `hidden_dim` token (a stride-P conv); a
learned class token is prepended, learned position embeddings added, and L encoder blocks follow:

    x = x + attention(LN(x))       every token a weighted sum of all tokens, weights from the input
    x = x + MLP(LN(x))             the same two-layer MLP on every token

State-dict names, shapes and order are torchvision's (`conv_proj`, `class_token`,
`encoder.pos_embedding`, `encoder.layers.encoder_layer_0.self_attention.in_proj_weight`, ...,
`heads.head`), so its checkpoints load with strict=True; `image_size` other than the checkpoint's
interpolates the position embeddings while loading (`weights.py`), as torchvision's
`interpolate_embeddings` does.

Attention runs through `F.scaled_dot_product_attention` (fused kernels on CPU and GPU); inside
`record_attention(model)` it takes the explicit softmax(QK^T / sqrt(d)) path instead and keeps the
weights of every block, for attention rollout (`reslab.report.attention`).

Feature API: `forward_features` returns the tokens after the final LayerNorm (B, 1 + N, D);
`forward_head(tokens, pre_logits=True)` the pooled embedding: the class token, or the mean of the
patch tokens with pool="mean". `feature_names`: "patch_embed" (a (B, D, h, w) map), "block3",
"block6", "block9" (ViT-B's; blocks a quarter, half and three quarters deep) and "encoder"
(= forward_features), all (B, 1 + h*w, D) tokens; `patch_grid_map` turns tokens into maps.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputSizeError, ReslabError
from .head import ClassifierHead
from .registry import CIFAR_MEAN, CIFAR_STD, register_builder, register_model

log = logging.getLogger(__name__)
POOLS = ("token", "mean")


class SelfAttention(nn.Module):
    """Multi-head self-attention with `nn.MultiheadAttention`'s parameters (in_proj_weight, in_proj_bias, out_proj).

    One (3D, D) matrix makes queries, keys and values, as in torchvision's checkpoints.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ReslabError(f"hidden_dim {dim} is not divisible by num_heads {num_heads}; pick a divisor")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.keep_weights = False  # set by record_attention(): take the explicit path and keep the weights
        self.weights: torch.Tensor | None = None  # (B, heads, tokens, tokens) of the last call, when kept
        # nn.MultiheadAttention's initialisation
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (B, H, N, d)
        p = self.dropout if self.training else 0.0
        if self.keep_weights:
            scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # (B, H, N, N)
            weights = scores.softmax(dim=-1)
            self.weights = weights.detach()
            out = F.dropout(weights, p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, N, d)
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}, dropout={self.dropout}"


class MLPBlock(nn.Sequential):
    """Linear -> GELU -> Dropout -> Linear -> Dropout; indices 0 and 3 hold the weights, as torchvision's."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float):
        super().__init__(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout))
        for m in self:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): drop a whole residual branch per sample, rescale the rest."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth: float = 0.0,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = SelfAttention(hidden_dim, num_heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)
        self.stochastic_depth = stochastic_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y = self.self_attention(y)
        y = self.dropout(y)
        x = x + drop_path(y, self.stochastic_depth, self.training)
        y = self.ln_2(x)
        y = self.mlp(y)
        return x + drop_path(y, self.stochastic_depth, self.training)


class Encoder(nn.Module):
    """Position embeddings, L encoder blocks, a final LayerNorm."""

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth: float = 0.0,
    ):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))  # as BERT
        self.dropout = nn.Dropout(dropout)
        blocks = OrderedDict()
        for i in range(num_layers):
            # stochastic depth grows linearly with depth (Huang et al.; DeiT): the first block is never dropped
            rate = stochastic_depth * i / max(num_layers - 1, 1)
            blocks[f"encoder_layer_{i}"] = EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, rate)
        self.layers = nn.Sequential(blocks)
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embedding
        x = self.dropout(x)
        x = self.layers(x)
        return self.ln(x)


class VisionTransformer(ClassifierHead, nn.Module):
    """Patch embedding -> [class token] + patch tokens + position embeddings -> L blocks -> LN -> head."""

    classifier_path = "heads.head"
    # embeddings that weight decay would pull to zero for no gain (optim.no_decay_norm_bias exempts them)
    no_weight_decay = ("class_token", "encoder.pos_embedding")

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        num_classes: int = 1000,
        representation_size: int | None = None,
        stochastic_depth: float = 0.0,
        pool: str = "token",
    ):
        super().__init__()
        if image_size % patch_size:
            lower, upper = image_size // patch_size * patch_size, (image_size // patch_size + 1) * patch_size
            nearest = f"{lower} or {upper}" if lower else str(upper)
            raise ReslabError(f"image_size {image_size} is not a multiple of the patch size {patch_size}; use a multiple, such as {nearest}")
        if pool not in POOLS:
            raise ReslabError(f"unknown pool {pool!r}; use 'token' (the class token) or 'mean' (mean of patch tokens)")
        if not 0.0 <= stochastic_depth < 1.0:
            raise ReslabError(f"stochastic_depth must be in [0, 1), got {stochastic_depth}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.pool = pool
        self.representation_size = representation_size
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.seq_length = (image_size // patch_size) ** 2 + 1
        self.encoder = Encoder(
            self.seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, stochastic_depth
        )
        head = OrderedDict()
        if representation_size is not None:  # the original ViT's pre-training head: Linear + tanh
            head["pre_logits"] = nn.Linear(hidden_dim, representation_size)
            head["act"] = nn.Tanh()
        self.num_features = representation_size or hidden_dim
        head["head"] = nn.Linear(self.num_features, num_classes)
        self.heads = nn.Sequential(head)
        # the patch embedding (a map), blocks a quarter, half and three quarters deep (tokens), and
        # the encoder's output (tokens after the final LayerNorm: what forward_features returns)
        picks = sorted({round(num_layers * f) for f in (0.25, 0.5, 0.75)} - {0, num_layers})
        self.feature_aliases = {"patch_embed": "conv_proj"}
        self.feature_aliases.update({f"block{i}": f"encoder.layers.encoder_layer_{i - 1}" for i in picks})
        self.feature_names = [*self.feature_aliases, "encoder"]
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's: truncated normal patch embedding, zero classifier
        fan_in = self.conv_proj.in_channels * self.conv_proj.kernel_size[0] * self.conv_proj.kernel_size[1]
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        if self.representation_size is not None:
            nn.init.trunc_normal_(self.heads.pre_logits.weight, std=math.sqrt(1 / self.heads.pre_logits.in_features))
            nn.init.zeros_(self.heads.pre_logits.bias)
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    @property
    def gradcam_layer(self) -> str:
        """Grad-CAM's layer: the last block's normalised input. The final patch tokens do not reach a
        class-token head (their gradient is zero); entering the last block, they still do through attention."""
        return f"encoder.layers.encoder_layer_{len(self.encoder.layers) - 1}.ln_1"

    @property
    def patch_grid(self) -> tuple[int, int]:
        side = self.image_size // self.patch_size
        return side, side

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            name = getattr(self, "model_name", "this ViT")
            p = self.patch_size
            other = max(p, round(x.shape[-1] / p) * p) if x.ndim == 4 else None
            rebuild = f", or build the model with image_size={other} (a multiple of its patch size {p}; position " \
                      "embeddings are interpolated when its weights are loaded)" if other and other != self.image_size else ""
            raise InputSizeError(
                f"{name} takes {self.image_size}x{self.image_size} images and got shape {tuple(x.shape)}; resize the "
                f"images to {self.image_size}{rebuild}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        b = x.shape[0]
        x = self.conv_proj(x)  # (B, D, H/P, W/P)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D): one token per patch, row by row
        x = torch.cat([self.class_token.expand(b, -1, -1), x], dim=1)  # (B, 1 + N, D)
        return self.encoder(x)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.pool == "token" else x[:, 1:].mean(dim=1)  # tokens (B, 1 + N, D) -> (B, D)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.representation_size is not None:  # the original ViT's Linear + tanh
            x = self.heads.act(self.heads.pre_logits(x))
        return x

    def adapt_checkpoint(self, state: dict, source: str):
        """Position embeddings made for another grid are interpolated to this model's (weights.py's hook)."""
        key = "encoder.pos_embedding"
        theirs = state.get(key)
        ours = self.encoder.pos_embedding
        if theirs is None or theirs.ndim != 3 or theirs.shape[-1] != ours.shape[-1] or theirs.shape[1] == ours.shape[1]:
            return state, None
        state[key] = interpolate_pos_embedding(theirs, self.patch_grid)
        side = math.isqrt(theirs.shape[1] - 1)
        log.info(
            "%s: position embeddings interpolated from a %dx%d to a %dx%d patch grid (image_size %d)",
            source, side, side, *self.patch_grid, self.image_size,
        )
        return state, None


def interpolate_pos_embedding(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + n*n, D) position embeddings -> (1, 1 + h*w, D): the class token's kept, the patch
    grid resized bicubically (align_corners=True), as torchvision's `interpolate_embeddings`."""
    n = pos.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ReslabError(f"position embeddings for {n} patches do not form a square grid; they cannot be interpolated")
    token, patches = pos[:, :1], pos[:, 1:]
    patches = patches.transpose(1, 2).reshape(1, pos.shape[2], side, side)  # (1, D, n, n)
    patches = F.interpolate(patches.float(), size=grid, mode="bicubic", align_corners=True).to(pos.dtype)
    patches = patches.flatten(2).transpose(1, 2)  # (1, h*w, D)
    return torch.cat([token, patches], dim=1)


def patch_grid_map(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Tokens (B, 1 + h*w, D) of a ViT as a feature map (B, D, h, w), the class token dropped.

    A (B, C, H, W) tensor is returned as it is, so callers can treat CNNs and ViTs alike.
    """
    if tokens.ndim == 4:
        return tokens
    grid = getattr(model, "patch_grid", None)
    if tokens.ndim != 3 or grid is None:
        raise ReslabError(f"a feature tensor of shape {tuple(tokens.shape)} has no spatial layout to draw")
    h, w = grid
    patches = tokens[:, tokens.shape[1] - h * w :]  # the last h*w tokens are patches (any prefix tokens dropped)
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Inside the block, every self-attention layer of `model` keeps its weights; the list yielded
    fills with one (B, heads, tokens, tokens) tensor per block, in order, at the next forward pass."""
    layers = [m for m in model.modules() if isinstance(m, SelfAttention)]
    if not layers:
        raise ReslabError(f"{getattr(model, 'model_name', type(model).__name__)} has no attention layers; use Grad-CAM for a CNN")
    recorded: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, i, o: recorded.append(m.weights)) for m in layers]
    for m in layers:
        m.keep_weights = True
    try:
        yield recorded
    finally:
        for m, h in zip(layers, handles):
            m.keep_weights = False
            m.weights = None
            h.remove()


# --- ImageNet ViTs: torchvision's builders ---------------------------------------------------------

VIT_ENTRY = {"resize": 256}


def _vit(name: str, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int, doc: str,
         **entry_fields) -> Callable[..., VisionTransformer]:  # fmt: skip
    """torchvision's ViT builders share one signature; each differs only in its architecture numbers."""

    def builder(
        num_classes: int = 1000,
        image_size: int = 224,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        representation_size: int | None = None,
        stochastic_depth: float = 0.0,
        pool: str = "token",
    ) -> VisionTransformer:
        return VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                                 hidden_dim=hidden_dim, mlp_dim=mlp_dim, dropout=dropout, attention_dropout=attention_dropout,
                                 num_classes=num_classes, representation_size=representation_size,
                                 stochastic_depth=stochastic_depth, pool=pool)  # fmt: skip

    return register_builder(name, builder, doc, "vit", **(entry_fields or VIT_ENTRY))


vit_b_16 = _vit("vit_b_16", 16, 12, 12, 768, 3072,
                "ViT-B/16: 12 blocks of width 768 (12 heads), 16x16 patches; 86.6M parameters, 17.56 GMACs at 224.")
vit_b_32 = _vit("vit_b_32", 32, 12, 12, 768, 3072,
                "ViT-B/32: ViT-B with 32x32 patches (49 tokens at 224); 88.2M parameters, 4.41 GMACs.")
vit_l_16 = _vit("vit_l_16", 16, 24, 16, 1024, 4096,
                "ViT-L/16: 24 blocks of width 1024 (16 heads), 16x16 patches; 304.3M parameters, 61.56 GMACs at 224.",
                resize=242)
vit_l_32 = _vit("vit_l_32", 32, 24, 16, 1024, 4096, "ViT-L/32: ViT-L with 32x32 patches; 306.5M parameters, 15.38 GMACs at 224.")
vit_h_14 = _vit("vit_h_14", 14, 32, 16, 1280, 5120,
                "ViT-H/14: 32 blocks of width 1280 (16 heads), 14x14 patches; 632.0M parameters, 167.3 GMACs at 224.",
                resize=224, interpolation="bicubic")  # fmt: skip


# --- small ViTs for 32 px images --------------------------------------------------------------------

CIFAR_VIT_ENTRY = {"input_size": (3, 32, 32), "num_classes": 10, "mean": CIFAR_MEAN, "std": CIFAR_STD, "resize": 32}


@register_model("vit_cifar", **CIFAR_VIT_ENTRY)
def vit_tiny_patch4_32(
    num_classes: int = 10,
    image_size: int = 32,
    patch_size: int = 4,
    num_layers: int = 12,
    num_heads: int = 3,
    hidden_dim: int = 192,
    mlp_dim: int = 768,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    stochastic_depth: float = 0.1,
    pool: str = "token",
) -> VisionTransformer:
    """ViT-Tiny for 32 px: DeiT-Ti's 12 x 192 (3 heads); 4x4 patches give 64 tokens; 5.4M parameters, 0.37 GMACs.

    Widths and depth: DeiT-Ti (Touvron et al. 2021, "Training data-efficient image transformers", Table 1:
    embedding 192, 3 heads, 12 layers, MLP 4x). 4x4 patches on 32x32 images follow the small-dataset ViT
    studies (Lee et al. 2021, "Vision Transformer for Small-Size Datasets"; Hassani et al. 2021,
    "Escaping the Big Data Paradigm with Compact Transformers", whose ViT-Lite-7/4 uses them too), where
    16x16 patches (4 tokens) fail. Stochastic depth 0.1 as DeiT and those studies train them.
    The other options are torchvision's `VisionTransformer` arguments, for variants of the same family.
    """
    return VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                             hidden_dim=hidden_dim, mlp_dim=mlp_dim, dropout=dropout, attention_dropout=attention_dropout,
                             num_classes=num_classes, stochastic_depth=stochastic_depth, pool=pool)


@register_model("vit_cifar", **CIFAR_VIT_ENTRY)
def vit_small_patch4_32(
    num_classes: int = 10,
    image_size: int = 32,
    patch_size: int = 4,
    num_layers: int = 12,
    num_heads: int = 6,
    hidden_dim: int = 384,
    mlp_dim: int = 1536,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    stochastic_depth: float = 0.1,
    pool: str = "token",
) -> VisionTransformer:
    """ViT-Small for 32 px: DeiT-S's 12 x 384 (6 heads); 4x4 patches give 64 tokens; 21.3M parameters, 1.42 GMACs.

    Widths and depth: DeiT-S (Touvron et al. 2021, Table 1: embedding 384, 6 heads, 12 layers, MLP 4x),
    with the 4x4 patches of the small-dataset studies cited in `vit_tiny_patch4_32`.
    """
    return VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                             hidden_dim=hidden_dim, mlp_dim=mlp_dim, dropout=dropout, attention_dropout=attention_dropout,
                             num_classes=num_classes, stochastic_depth=stochastic_depth, pool=pool)
