"""What the presence head looks at: frozen features of the scene, one vector per place.

* a hybrid CondViT (a pretrained trunk, e.g. hybrid-lite0): the trunk's map, the same
  ``patch_maps`` the CondViT embeds (ImageNet features at stride 16: 14 × 14 × 112 at 224 px),
  which the Searcher's trunk memo already holds for a photo it has seen;
* any other CondViT: the patch tokens after the last block of an unconditioned forward.
"""

from __future__ import annotations

import torch


def feature_kind(model) -> str:
    """``"trunk"`` (a hybrid's trunk map) or ``"tokens"`` (the last block's patch tokens)."""
    return "trunk" if getattr(model, "trunk", None) is not None else "tokens"


@torch.no_grad()
def presence_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """Preprocessed images (B, 3, R, R) → features (B, N, C) for :class:`PresenceHead`."""
    if feature_kind(model) == "trunk":
        maps = model.patch_maps(pixels, any_size=True)  # (B, C, g, g); a locator's own size
        return maps.flatten(2).transpose(1, 2).float()  # (B, g², C)
    h = model.tokens(pixels)  # (B, 1 + g², W), unconditioned
    for block in model.transformer.resblocks:
        h = block(h)
    return h[:, 1:].float()  # (B, g², W)
