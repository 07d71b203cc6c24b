"""A straightforward reference-style CondViT: OpenAI CLIP's ``VisionTransformer`` as published.

Benchmark baseline only (not part of the package). It follows ``clip/model.py`` line by line:
``nn.MultiheadAttention(width, heads)`` in its default sequence-first layout (L, N, D) with the
permutes CLIP does, CLIP's ``LayerNorm`` subclass that computes in float32, the ``QuickGELU``
module and ``nn.Sequential(OrderedDict(c_fc, gelu, c_proj))``. The CondViT condition token
(``c_embedding`` row + ``c_pos_embedding``) is appended last, after the positional embedding and
before ``ln_pre``, as in ``referred.model.condvit``. Parameter names are CLIP's, so
``load_state_dict(condvit.state_dict())`` works as is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class LayerNorm(nn.LayerNorm):
    """Subclass torch's LayerNorm to handle fp16 (CLIP's comment)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig_type = x.dtype
        ret = super().forward(x.type(torch.float32))
        return ret.type(orig_type)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(d_model, d_model * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(d_model * 4, d_model)),
                ]
            )
        )
        self.ln_2 = LayerNorm(d_model)
        self.attn_mask = None

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False, attn_mask=self.attn_mask)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class ClipCondViT(nn.Module):
    """CLIP's VisionTransformer + the CondViT category token (patchify stem only)."""

    def __init__(
        self,
        input_resolution: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        n_categories: int,
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width)
        )
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.c_embedding = nn.Embedding(n_categories, width)
        self.c_pos_embedding = nn.Parameter(scale * torch.randn(1, width))

    @classmethod
    def from_condvit(cls, model: nn.Module) -> ClipCondViT:
        """The same weights as a category-conditioned ``referred`` CondViT."""
        cfg = model.config
        if cfg.conv_stem or getattr(cfg, "trunk", None) or not cfg.categories:
            raise ValueError(
                "the reference-style model covers patchify stems (no conv stem, no trunk) "
                "with categories"
            )
        ref = cls(
            cfg.input_resolution,
            cfg.patch_size,
            cfg.width,
            cfg.layers,
            cfg.heads,
            cfg.output_dim,
            len(cfg.categories),
        )
        ref.load_state_dict(model.state_dict())
        return ref.eval()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # shape = [*, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1)  # shape = [*, width, grid ** 2]
        x = x.permute(0, 2, 1)  # shape = [*, grid ** 2, width]
        x = torch.cat(
            [
                self.class_embedding.to(x.dtype)
                + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device),
                x,
            ],
            dim=1,
        )  # shape = [*, grid ** 2 + 1, width]
        x = x + self.positional_embedding.to(x.dtype)
        cond = self.c_embedding(c) + self.c_pos_embedding  # shape = [*, width]
        x = torch.cat([x, cond[:, None, :].to(x.dtype)], dim=1)  # shape = [*, grid ** 2 + 2, width]
        x = self.ln_pre(x)

        x = x.permute(1, 0, 2)  # NLD -> LND
        x = self.transformer(x)
        x = x.permute(1, 0, 2)  # LND -> NLD

        x = self.ln_post(x[:, 0, :])
        return x @ self.proj


def convert_weights_bf16(model: ClipCondViT) -> ClipCondViT:
    """CLIP's ``convert_weights`` with bfloat16 for float16: conv, linear and attention weights
    and ``proj`` change dtype; layer norms and embeddings stay float32. In place; returns it."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data = m.weight.data.bfloat16()
            if m.bias is not None:
                m.bias.data = m.bias.data.bfloat16()
        if isinstance(m, nn.MultiheadAttention):
            for name in ("in_proj_weight", "in_proj_bias"):
                tensor = getattr(m, name)
                tensor.data = tensor.data.bfloat16()
    model.proj.data = model.proj.data.bfloat16()
    return model
