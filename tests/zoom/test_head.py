"""The locator: shapes, errors, and learning to find the asked one of two items."""

from __future__ import annotations

import pytest
import torch

from referred.zoom.head import Locator, generalised_iou, grid_of

G, C, W = 6, 8, 8


def _scenes(n: int, gen: torch.Generator, signatures: torch.Tensor):
    """Noise on a G × G grid with two items (categories 0 and 1) in two distinct cells; the
    asked category is random. → features (n, G², C), asked (n,), boxes (n, 4), other (n, 4)."""
    feats = 0.3 * torch.randn(n, G * G, C, generator=gen)
    asked = torch.randint(0, 2, (n,), generator=gen)
    boxes, other = torch.empty(n, 4), torch.empty(n, 4)
    for i in range(n):
        cells = torch.randperm(G * G, generator=gen)[:2]
        for cat, cell in enumerate(cells.tolist()):
            feats[i, cell] += signatures[cat]
            row, col = divmod(cell, G)
            box = torch.tensor([(col + 0.5) / G, (row + 0.5) / G, 1 / G, 1 / G])
            (boxes if cat == asked[i] else other)[i] = box
    return feats, asked, boxes, other


def test_shapes_heat_map_and_bad_inputs():
    head = Locator(C, W, G, hidden=16)
    logits, boxes = head(torch.randn(3, G * G, C), torch.randn(3, W))
    assert logits.shape == (3, G * G) and boxes.shape == (3, 4)
    assert ((boxes > 0) & (boxes < 1)).all()
    heat = head.heat_map(torch.randn(2, G * G, C), torch.randn(2, W))
    assert heat.shape == (2, G, G) and torch.allclose(heat.sum((1, 2)), torch.ones(2))
    with pytest.raises(ValueError, match=r"features must have shape \(B, 36, 8\)"):
        head(torch.randn(3, 35, C), torch.randn(3, W))
    with pytest.raises(ValueError, match=r"condition tokens must have shape \(3, 8\)"):
        head(torch.randn(3, G * G, C), torch.randn(2, W))
    with pytest.raises(ValueError, match="do not make a square grid"):
        grid_of(torch.randn(1, 35, C))


@pytest.mark.parametrize("film", [True, False])
def test_it_learns_to_find_the_asked_item_not_the_other_one(film):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    signatures = 2 * torch.randn(2, C, generator=gen)
    tokens = torch.randn(2, W, generator=gen)  # the condition tokens of the two categories
    head = Locator(C, W, G, hidden=32, film=film)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(300):
        feats, asked, boxes, _ = _scenes(64, gen, signatures)
        loss = head.loss(feats, tokens[asked], boxes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    feats, asked, boxes, other = _scenes(200, gen, signatures)
    with torch.no_grad():
        _, found = head(feats, tokens[asked])
        _, swapped = head(feats, tokens[1 - asked])

    def hit(pred, true):  # the predicted centre lies in the true cell
        return ((pred[:, :2] - true[:, :2]).abs() < 0.5 / G).all(1).float().mean().item()

    assert hit(found, boxes) > 0.85
    assert hit(swapped, other) > 0.85  # the condition, not the scene alone, decides
    assert (found[:, 2:] - boxes[:, 2:]).abs().mean() < 0.05


def test_generalised_iou_on_hand_computed_boxes():
    a = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.2, 0.2]])
    b = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2], [0.75, 0.5, 0.2, 0.2]])
    # same box: 1; shifted by half its width: overlap 0.02 / union 0.06, the hull is the union;
    # disjoint: no overlap, the hull (0.7 × 0.2) is 0.06 larger than the union (0.08)
    want = torch.tensor([1.0, 1 / 3, -0.06 / 0.14])
    torch.testing.assert_close(generalised_iou(a, b), want)
    torch.testing.assert_close(generalised_iou(b, a), want)


def test_the_overlap_term_pulls_a_disjoint_box_towards_the_true_one():
    true = torch.tensor([[0.75, 0.5, 0.2, 0.2]])
    pred = torch.tensor([[0.25, 0.5, 0.2, 0.2]], requires_grad=True)
    (1 - generalised_iou(pred, true)).sum().backward()
    assert pred.grad[0, 0] < 0  # descending moves the centre right, to the true box


def test_film_starts_as_the_added_condition_and_scales_by_it():
    torch.manual_seed(0)
    added, scaled = Locator(C, W, G, hidden=16, film=False), Locator(C, W, G, hidden=16)
    scaled.load_state_dict(added.state_dict(), strict=False)  # all but gamma, zero at start
    feats, tokens = torch.randn(3, G * G, C), torch.randn(3, W)
    torch.testing.assert_close(scaled(feats, tokens), added(feats, tokens))
    with torch.no_grad():
        scaled.gamma.bias.fill_(-1.0)  # scale 0: the scene's features no longer reach the cells
    logits, _ = scaled(feats, tokens)
    other, _ = scaled(torch.randn(3, G * G, C), tokens)
    torch.testing.assert_close(logits, other)
    assert scaled.config()["film"] is True and added.config()["film"] is False


def test_the_loss_adds_the_overlap_term_with_its_weight():
    torch.manual_seed(0)
    head = Locator(C, W, G, hidden=16)
    feats, tokens = torch.randn(4, G * G, C), torch.randn(4, W)
    boxes = torch.tensor([[0.3, 0.4, 0.2, 0.1]] * 4)
    with torch.no_grad():
        _, pred = head(feats, tokens)
        plain, weighted = head.loss(feats, tokens, boxes, 0), head.loss(feats, tokens, boxes, 3)
    term = (1 - generalised_iou(pred, boxes)).mean()
    torch.testing.assert_close(weighted - plain, 3 * term)
    torch.testing.assert_close(head.loss(feats, tokens, boxes), plain + 2 * term)  # default 2
