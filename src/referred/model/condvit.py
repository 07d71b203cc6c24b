"""CondViT: the OpenAI-CLIP visual transformer with one extra conditioning token.

Parameter names are those of the published checkpoints (CLIP's ``VisionTransformer`` plus
``c_embedding`` / ``c_pos_embedding``), so the state dict of this module *is* the training-code
layout. Tokens are ``[class, patch_1 … patch_{g²}, cond]``: the condition token is appended last
with its own positional embedding, and only when a condition is given; without one the forward
is exactly CLIP's. A hybrid (``config.trunk`` set) takes its patch tokens from a CNN trunk's
feature map instead of pixels: ``conv1`` is then a convolution on that map with kernel and
stride ``trunk_patch`` (1×1 by default). Attention uses
the fused ``scaled_dot_product_attention`` kernel on the packed ``in_proj_weight`` of
``nn.MultiheadAttention``'s layout. Layout inside is batch-first (B, N, W).

The user-facing helpers (``preprocess``, ``encode_queries``, ``encode_targets``,
``save_pretrained``) delegate to :mod:`referred.model.encoding`; this file holds only math.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from referred.model.config import ModelConfig
from referred.model.efficientnet import EfficientNetLite0, unpack_pyramid
from referred.model.fixed_trunk import FixedTrunk, fixed_reason

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP's), cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        y = F.layer_norm(
            x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        )
        return y.to(x.dtype)


class QuickGELU(nn.Module):
    """CLIP's activation: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return x * torch.sigmoid(1.702 * x)
        return (1.702 * x).sigmoid_().mul_(x)  # one buffer: no autograd graph to protect


class Linear(nn.Linear):
    """``nn.Linear`` whose product is ``self.linear_fn`` (``F.linear``; the training loop may
    switch it to :func:`referred.model.cpu_linear.onednn_linear`). Same parameters and names."""

    linear_fn: Callable[..., torch.Tensor] = staticmethod(F.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fn(x, self.weight, self.bias)


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names.

    ``in_proj_weight`` (3W, W) packs the q, k, v projections; ``out_proj`` is a Linear(W, W).
    """

    linear_fn: Callable[..., torch.Tensor] = staticmethod(F.linear)

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, x: torch.Tensor, need_weights: bool = False, queries: int | None = None
    ) -> Any:
        """x: (B, N, W) → (B, Q, W) with Q = N, or only the first ``queries`` tokens' outputs
        (keys and values still come from all N); with ``need_weights`` also the head-averaged
        attention probabilities (B, Q, N)."""
        b, n, w = x.shape
        hd = w // self.heads
        if queries is None:
            qkv = self.linear_fn(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3W)
            qkv = qkv.view(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)  # each (B, H, N, hd)
        else:  # project only the queries that are needed
            w_q, w_kv = self.in_proj_weight.split([w, 2 * w])
            b_q, b_kv = self.in_proj_bias.split([w, 2 * w])
            q = self.linear_fn(x[:, :queries], w_q, b_q)  # (B, Q, W)
            q = q.view(b, queries, self.heads, hd).transpose(1, 2)  # (B, H, Q, hd)
            kv = self.linear_fn(x, w_kv, b_kv).view(b, n, 2, self.heads, hd)  # (B, N, 2, H, hd)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, hd)
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, Q, N)
            probs = scores.softmax(dim=-1)
            out = probs @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, H, Q, hd)
        out = self.out_proj(out.transpose(1, 2).reshape(b, -1, w))  # (B, Q, W)
        return (out, probs.mean(dim=1)) if need_weights else out


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", Linear(width, hidden))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", Linear(hidden, width))

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """x: (B, N, W) → (B, N, W), or only the first ``queries`` tokens' outputs (B, Q, W).

        The residual adds are in place on the fresh outputs of ``out_proj`` and ``c_proj``
        (autograd allows it: a Linear's backward does not need its output).
        """
        skip = x if queries is None else x[:, :queries]
        x = self.attn(self.ln_1(x), queries=queries).add_(skip)
        return self.mlp(self.ln_2(x)).add_(x)


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class ConvStem(nn.Module):
    """Optional hybrid stem: 3×3 stride-2 convs (GroupNorm + GELU) before ``conv1``.

    Not part of the published checkpoints; it makes small models trained from scratch learn
    much faster (see docs/benchmarks.md). Each conv halves the resolution.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def cell_shares(weight: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Share of each map cell in its token: ``conv1`` (kernel = stride = k) makes a token from
    k × k cells as a sum of one term per cell, ``W[:, :, i, j] @ f[cell]``; the share of a cell
    is its term's L2 norm over the sum of the k² norms of its token's terms.

    weight: (W, C, k, k); maps: (B, C, g·k, g·k) → (B, g·k, g·k), each k × k block summing to 1.
    """
    k = weight.shape[-1]
    b, _, hk, wk = maps.shape
    cells = maps.reshape(b, -1, hk // k, k, wk // k, k)  # (B, C, g, i, g, j)
    terms = torch.einsum("ocij,bcyixj->boyixj", weight, cells)  # (B, W, g, i, g, j)
    norms = terms.norm(dim=1)  # (B, g, i, g, j)
    block = norms.sum(dim=(2, 4), keepdim=True).clamp_min(1e-12)
    return (norms / block).reshape(b, hk, wk)


def build_trunk(config: ModelConfig) -> nn.Module:
    """The CNN trunk a hybrid config names, randomly initialised; its ``out_channels`` is the
    channel count of its (B, C, R/s, R/s) feature map."""
    if config.trunk == "efficientnet-lite0":
        if config.trunk_pyramid:  # one pass to the token stride, the fine map packed beside it
            return EfficientNetLite0(
                output_stride=config.patch_size, pyramid_from=config.trunk_stride
            )
        return EfficientNetLite0(output_stride=config.trunk_stride)
    raise ValueError(f"no trunk builder for {config.trunk!r}")  # ModelConfig checks the name


class CondViT(nn.Module):
    """CLIP ViT with an optional conditioning token; ``forward(x, c)`` → (B, output_dim).

    Calling conventions for ``c``: ``None`` (plain ViT forward), a LongTensor (B,) of
    category indices into ``config.categories``, or a FloatTensor (B, cond_dim) of condition
    vectors. The output is *not* normalised.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, scale = config.width, config.width**-0.5
        self.stem = ConvStem(config.conv_stem) if config.conv_stem else None
        self.trunk = build_trunk(config) if config.trunk else None
        if self.trunk is not None:  # the trunk already strides; conv1 groups its cells
            c_in, stride = self.trunk.out_channels, config.trunk_patch
            if config.trunk_pyramid:  # a cell: its fine features and its token's deep ones
                c_in = self.trunk.pyramid[0] + self.trunk.pyramid[1]
        else:
            c_in = self.stem.out_channels if self.stem is not None else 3
            stride = config.patch_size // 2 ** len(config.conv_stem)
        self.conv1 = nn.Conv2d(c_in, w, stride, stride, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.grid**2 + 1, w))
        self.ln_pre = LayerNorm(w)
        self.transformer = Transformer(w, config.layers, config.heads, config.mlp_ratio)
        self.ln_post = LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, config.output_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        if config.categories:
            self.c_embedding = nn.Embedding(len(config.categories), w)
            nn.init.normal_(self.c_embedding.weight, std=scale)
        if config.cond_dim is not None and config.cond_dim != w:
            self.c_proj = nn.Linear(config.cond_dim, w)
        if config.conditional:
            self.c_pos_embedding = nn.Parameter(scale * torch.randn(1, w))
        self._text_encoder: Any = None  # set lazily by referred.model.encoding
        #: ``(trunk, images) → maps`` standing in for ``trunk(images)`` (a frozen trunk's memo)
        self.trunk_memo: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
        #: runs the trunk, when it is a fixed function, folded and in micro-batches
        self.fixed_trunk = FixedTrunk()
        #: condition vectors of fixed texts (text → (cond_dim,)), saved with the weights
        self.known_texts: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> CondViT:
        """As ``nn.Module.train``; a trunk whose config says ``trunk_bn="frozen"`` keeps its
        BatchNorm layers in eval mode (running statistics used, never updated)."""
        super().train(mode)
        if self.trunk is not None and self.config.trunk_bn == "frozen":
            for m in self.trunk.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    # -- math ---------------------------------------------------------------------------------
    def condition_token(self, c: torch.Tensor) -> torch.Tensor:
        """Condition (B,) long or (B, cond_dim) float → token (B, W), position included."""
        cfg = self.config
        if not cfg.conditional:
            raise ValueError("this model has no conditioning; call it with c=None")
        if c.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
            if not cfg.categories:
                raise ValueError(
                    "this model takes condition vectors (float tensors of size "
                    f"{cfg.cond_dim}), not category indices"
                )
            if c.ndim != 1:
                raise ValueError(f"category indices must have shape (B,), got {tuple(c.shape)}")
            n = len(cfg.categories)
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= n):
                raise ValueError(
                    f"category index out of range [0, {n}): {c.tolist()}; "
                    f"categories: {list(cfg.categories)}"
                )
            tok = self.c_embedding(c.long())
        elif c.is_floating_point():
            if cfg.cond_dim is None:
                raise ValueError(
                    "this model is conditioned on categories; pass a LongTensor of indices "
                    f"into {list(cfg.categories)}"
                )
            if c.ndim != 2 or c.shape[1] != cfg.cond_dim:
                raise ValueError(
                    f"condition vectors must have shape (B, {cfg.cond_dim}), got {tuple(c.shape)}"
                )
            tok = self.c_proj(c) if hasattr(self, "c_proj") else c
        else:
            raise TypeError(f"condition must be a long or float tensor, got {c.dtype}")
        return tok.to(self.positional_embedding.dtype) + self.c_pos_embedding  # (B, W)

    def patch_maps(self, x: torch.Tensor, any_size: bool = False) -> torch.Tensor:
        """Images (B, 3, R, R) → the map ``conv1`` embeds: the trunk's features (B, C, g, g)
        for a hybrid, the stem's output, or the pixels themselves.

        With ``trunk_memo`` set (a frozen trunk in training, see
        :mod:`referred.model.trunk_memo`), the trunk's maps come from it; otherwise a trunk
        that is a fixed function here (inference, a frozen trunk) runs through
        :mod:`referred.model.fixed_trunk` (BatchNorm folded, CPU micro-batches).
        ``any_size``: a hybrid's convolutional trunk reads images of any size (a locator's
        scenes, :mod:`referred.zoom`); such a map is not for ``conv1``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"pixel_values must have shape (B, 3, H, W), got {tuple(x.shape)}")
        res = self.config.input_resolution
        if x.shape[-2:] != (res, res) and not (any_size and self.trunk is not None):
            raise ValueError(f"this model takes {res}x{res} images, got {tuple(x.shape[-2:])}")
        x = x.to(self.conv1.weight.dtype)
        if self.trunk is not None:
            if self.trunk_memo is not None:
                maps = self.trunk_memo(self.trunk, x)
            elif fixed_reason(self.trunk, x) is None:
                maps = self.fixed_trunk(self.trunk, x)
            else:
                maps = self.trunk(x)
            if self.config.trunk_pyramid:  # memoised packed (1.7× a fine map), spread here
                fine, _, k = self.trunk.pyramid
                maps = unpack_pyramid(maps, fine, k)
            return maps
        return self.stem(x) if self.stem is not None else x

    def tokens(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 3, R, R) → input tokens (B, 1 + g² [+ 1], W) after ``ln_pre``."""
        return self.map_tokens(self.patch_maps(x), c)

    def map_tokens(self, maps: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`patch_maps`' output → input tokens (B, 1 + g² [+ 1], W) after ``ln_pre``."""
        x = self.conv1(maps.to(self.conv1.weight.dtype))  # (B, W, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g², W)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, W)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, 1+g², W)
        if c is not None:
            if c.shape[0] != x.shape[0]:
                raise ValueError(f"{c.shape[0]} conditions for {x.shape[0]} images")
            tok = self.condition_token(c.to(x.device))  # (B, W)
            x = torch.cat([x, tok[:, None, :].to(x.dtype)], dim=1)  # (B, 2+g², W)
        return self.ln_pre(x)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """pixel_values (B, 3, R, R), condition → unnormalised embeddings (B, output_dim)."""
        h = self.tokens(x, c)  # (B, N, W)
        *blocks, last = self.transformer.resblocks
        for block in blocks:
            h = block(h)
        # Only the class token leaves the model, so the last block computes its output alone:
        # queries, out-projection and MLP for 1 token instead of N (7% of B/16's FLOPs).
        h = last(h, queries=1)  # (B, 1, W)
        return self.ln_post(h[:, 0, :]) @ self.proj  # (B, D)

    def attention_map(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of the class token over the patches in the last block, (B, g, g).

        Averaged over heads and renormalised over the patch tokens only. A hybrid whose tokens
        group ``k × k`` cells of the trunk's map (``trunk_patch`` k > 1) answers at the map's
        resolution, (B, g·k, g·k): each token's attention is shared among its cells in
        proportion to the size (L2 norm) of each cell's term in the token's embedding
        (:func:`cell_shares`), so a block of k × k cells sums to its token's attention.
        """
        maps = self.patch_maps(x)
        h = self.map_tokens(maps, c)
        blocks = self.transformer.resblocks
        for block in blocks[:-1]:
            h = block(h)
        _, probs = blocks[-1].attn(blocks[-1].ln_1(h), need_weights=True)  # (B, N, N)
        g = self.config.grid
        cls_to_patches = probs[:, 0, 1 : 1 + g * g]  # (B, g²)
        cls_to_patches = cls_to_patches / cls_to_patches.sum(dim=-1, keepdim=True)
        amap = cls_to_patches.reshape(-1, g, g)
        k = self.config.trunk_patch
        if self.trunk is None or k == 1:
            return amap
        shares = cell_shares(self.conv1.weight, maps.to(self.conv1.weight.dtype))  # (B, gk, gk)
        return amap.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2) * shares

    # -- user-facing helpers (see referred.model.encoding) ----------------------------------
    @property
    def device(self) -> torch.device:
        return self.positional_embedding.device

    def preprocess(self, images: Any) -> torch.Tensor:
        from referred.model import encoding

        return encoding.preprocess_for(self, images)

    def encode_queries(self, images: Any, conds: Any = None, batch_size: int = 32) -> torch.Tensor:
        from referred.model import encoding

        return encoding.encode_queries(self, images, conds, batch_size=batch_size)

    def encode_targets(self, images: Any, batch_size: int = 32) -> torch.Tensor:
        from referred.model import encoding

        return encoding.encode_targets(self, images, batch_size=batch_size)

    def encode_conditions(self, conds: Any) -> torch.Tensor | None:
        from referred.model import encoding

        return encoding.encode_conditions(self, conds)

    def save_pretrained(self, directory: Any, extra: dict[str, Any] | None = None) -> None:
        from referred.model import checkpoints

        checkpoints.save_pretrained(self, directory, extra=extra)
