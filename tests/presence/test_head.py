"""The presence head: shapes, learning a planted signal, calibration, saving and loading."""

from __future__ import annotations

import pytest
import torch

from referred.presence import PresenceHead, load_head, roc_auc, save_head


def planted(n: int, seed: int):
    """Scenes of 16 places × 8 features; category j (of 3) is worn when some place carries
    the pattern e_j + noise; the places and the other features are noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, 8, generator=g) * 0.5
    worn = (torch.rand(n, 3, generator=g) < 0.4).float()
    for i in range(n):
        for j in range(3):
            if worn[i, j]:
                x[i, int(torch.randint(0, 16, (1,), generator=g)), j] += 3.0
    return x, worn


def test_the_head_learns_which_condition_is_present():
    torch.manual_seed(0)
    cond = torch.eye(3, 6)  # three condition tokens of width 6
    head = PresenceHead(8, 6, hidden=16, heads=2)
    x, y = planted(400, 0)
    xt, yt = planted(200, 1)
    with torch.no_grad():
        before = roc_auc(yt.numpy(), head(xt, cond).numpy())
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    for _ in range(150):
        loss = head.loss(x, cond, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = head(xt, cond)
    assert logits.shape == (200, 3)
    assert before < 0.7 and roc_auc(yt.numpy(), logits.numpy()) > 0.9


def test_shapes_are_checked_with_what_is_expected():
    head = PresenceHead(8, 6, hidden=16, heads=2)
    with pytest.raises(ValueError, match=r"features must have shape \(B, N, 8\)"):
        head(torch.zeros(2, 8), torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"condition tokens must have shape \(K, 6\)"):
        head(torch.zeros(2, 4, 8), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="multiple of heads"):
        PresenceHead(8, 6, hidden=10, heads=4)


def test_save_and_load_round_trip_with_calibration(tmp_path):
    head = PresenceHead(8, 6, hidden=16, heads=2, feature_kind="tokens")
    head.a.fill_(0.7)
    head.b.fill_(-0.2)
    save_head(tmp_path, head, report={"test_auc": 0.9})
    loaded = load_head(tmp_path, cond_width=6)
    x, c = torch.randn(3, 5, 8), torch.randn(2, 6)
    with torch.no_grad():
        assert torch.equal(loaded.probability(x, c), head.eval().probability(x, c))
    assert loaded.feature_kind == "tokens" and float(loaded.a) == pytest.approx(0.7)
    assert load_head(tmp_path / "elsewhere", cond_width=6) is None  # no head: None
    with pytest.raises(ValueError, match="width 6, this one has width 7"):
        load_head(tmp_path, cond_width=7)
    (tmp_path / "presence.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="is not a presence head"):
        load_head(tmp_path, cond_width=6)
