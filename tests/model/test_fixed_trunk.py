"""A fixed trunk runs folded and in micro-batches, computing what the trunk itself computes."""

from __future__ import annotations

import pytest
import torch

import referred
from referred.model.efficientnet import EfficientNetLite0
from referred.model.fixed_trunk import FixedTrunk, batchnorms, fixed_reason

from .test_hybrid import images, rel_err, small_hybrid


def random_stats_trunk(seed: int = 0) -> EfficientNetLite0:
    torch.manual_seed(seed)
    trunk = EfficientNetLite0(output_stride=16)
    g = torch.Generator().manual_seed(seed + 1)
    for m in trunk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1.0 + 0.5 * torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1.0 + 0.2 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return trunk.eval().requires_grad_(False)  # frozen, as a trunk the memo or a server runs


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def test_folding_batchnorm_computes_the_same_maps_and_leaves_the_trunk_alone():
    trunk = random_stats_trunk()
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    folded = trunk.folded()
    x = images(3)
    with torch.no_grad():
        want, got = trunk(x), folded(x)
    assert rel_err(flat(got), flat(want)) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    for k, v in trunk.state_dict().items():
        assert torch.equal(v, before[k]), k
    classifier = EfficientNetLite0().eval()  # the head's BatchNorm folds too
    with torch.no_grad():
        assert rel_err(classifier.folded()(x), classifier(x)) < 1e-5


@pytest.mark.parametrize("n", [1, 2, 5])
def test_micro_batches_give_the_whole_batch_answer(n):
    trunk = random_stats_trunk()
    x = images(n)
    with torch.no_grad():
        want = trunk(x)
    got = FixedTrunk(micro_batch=2)(trunk, x)
    assert got.shape == want.shape
    assert rel_err(flat(got), flat(want)) < 1e-5


def test_the_folded_copy_follows_changes_of_the_trunk():
    trunk = random_stats_trunk()
    runner = FixedTrunk()
    x = images(2)
    first = runner(trunk, x)
    folded = runner.folded(trunk)
    assert runner.folded(trunk) is folded  # kept while the trunk does not change
    with torch.no_grad():
        trunk._blocks[-1]._bn2.bias.add_(1.0)  # an in-place update, e.g. a load
        want = trunk(x)
    second = runner(trunk, x)
    assert runner.folded(trunk) is not folded
    assert rel_err(flat(second), flat(want)) < 1e-5
    assert rel_err(flat(second), flat(first)) > 1e-2
    other = random_stats_trunk(seed=5)
    with torch.no_grad():
        assert rel_err(flat(runner(other, x)), flat(other(x))) < 1e-5


def test_a_trunk_that_can_change_is_not_fixed():
    trunk = random_stats_trunk().requires_grad_(True)
    assert fixed_reason(trunk) == "a trunk parameter requires grad"
    with torch.no_grad():
        assert fixed_reason(trunk) is None
    trunk.requires_grad_(False)
    assert fixed_reason(trunk) is None
    x = images(1).requires_grad_(True)
    assert fixed_reason(trunk, x) == "a gradient is asked of the images"
    trunk.train()
    assert fixed_reason(trunk) == "the trunk's BatchNorm is in training mode"
    with pytest.raises(ValueError, match="not a fixed function here: the trunk's BatchNorm"):
        FixedTrunk()(trunk, images(1))
    with pytest.raises(ValueError, match="positive"):
        FixedTrunk(micro_batch=0)


def test_the_batchnorm_check_follows_a_changed_trunk():
    """Its BatchNorm layers are remembered, not walked each call; a layer turned to training
    alone, or one that joins the trunk later, is still seen."""
    trunk = random_stats_trunk()
    assert fixed_reason(trunk) is None
    layers = batchnorms(trunk)
    assert len(layers) > 10 and batchnorms(trunk) is layers  # remembered
    layers[3].train()
    assert fixed_reason(trunk) == "the trunk's BatchNorm is in training mode"
    layers[3].eval()
    assert fixed_reason(trunk) is None
    trunk.extra = torch.nn.Sequential(torch.nn.BatchNorm2d(4).requires_grad_(False))  # training
    assert fixed_reason(trunk) == "the trunk's BatchNorm is in training mode"
    assert len(batchnorms(trunk)) == len(layers) + 1


def test_the_hybrid_takes_the_fixed_path_only_where_nothing_can_change():
    model = small_hybrid(categories=referred.LRVSF_CATEGORIES).eval()
    x, c = images(5), torch.arange(5)
    runner, fixed = model.fixed_trunk, []
    model.fixed_trunk = lambda trunk, images: fixed.append(len(images)) or runner(trunk, images)
    with torch.no_grad():
        fast = model(x, c)
        model.trunk_memo = lambda trunk, images: trunk(images)  # the trunk as is, one batch
        plain = model(x, c)
        model.trunk_memo = None
    assert fixed == [5]  # inference: the folded copy ran
    assert rel_err(fast, plain) < 1e-5
    # a gradient asked of the pixels (saliency) goes through the trunk itself
    xg = x.clone().requires_grad_(True)
    model(xg, c).sum().backward()
    assert fixed == [5] and xg.grad is not None and xg.grad.abs().sum() > 0
    # training the trunk: the trunk itself, and its parameters get gradients
    model.train()
    model(x, c).sum().backward()
    assert fixed == [5] and model.trunk._conv_stem.weight.grad is not None
