"""An independent, deliberately plain float64 CondViT forward for parity tests.

Written from the description in lrvs-f.md §2 on a training-layout state dict: explicit loops
over heads, textbook softmax and layer norm. Shares no code with ``referred.model``.
"""

from __future__ import annotations

import math

import torch


def _ln(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _attention(x, sd, p, heads):
    _, width = x.shape
    hd = width // heads
    wq, wk, wv = sd[p + "in_proj_weight"].chunk(3, dim=0)
    bq, bk, bv = sd[p + "in_proj_bias"].chunk(3, dim=0)
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    outs = []
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        scores = q[:, s] @ k[:, s].T / math.sqrt(hd)
        scores = scores - scores.max(-1, keepdim=True).values
        e = torch.exp(scores)
        outs.append((e / e.sum(-1, keepdim=True)) @ v[:, s])
    o = torch.cat(outs, dim=-1)
    return o @ sd[p + "out_proj.weight"].T + sd[p + "out_proj.bias"]


def reference_forward(sd, image, cond_token=None, heads=None):
    """One image (3, R, R) → embedding (D,), in float64.

    ``cond_token``: the (width,) condition token before its positional embedding (a row of
    ``c_embedding`` or a condition vector), or None.
    """
    sd = {k: v.detach().to(torch.float64) for k, v in sd.items()}
    w = sd["conv1.weight"]  # (width, 3, P, P)
    width, _, patch, _ = w.shape
    heads = heads or width // 64
    x = image.to(torch.float64)
    g = x.shape[-1] // patch
    patches = []
    for i in range(g):  # row-major, as a strided convolution reads them
        for j in range(g):
            tile = x[:, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch]
            patches.append((w * tile).sum(dim=(1, 2, 3)))
    tokens = torch.stack([sd["class_embedding"], *patches]) + sd["positional_embedding"]
    if cond_token is not None:
        c = cond_token.to(torch.float64) + sd["c_pos_embedding"][0]
        tokens = torch.cat([tokens, c[None]])
    h = _ln(tokens, sd["ln_pre.weight"], sd["ln_pre.bias"])
    n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    for i in range(n_layers):
        p = f"transformer.resblocks.{i}."
        h = h + _attention(
            _ln(h, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]), sd, p + "attn.", heads
        )
        m = _ln(h, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        m = m @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
        m = m * (1.0 / (1.0 + torch.exp(-1.702 * m)))
        h = h + m @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
    return _ln(h[0], sd["ln_post.weight"], sd["ln_post.bias"]) @ sd["proj"]
