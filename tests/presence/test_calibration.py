"""ROC AUC, ECE and Platt scaling on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from referred.presence import expected_calibration_error, fit_platt, roc_auc


def test_auc_hand_cases():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    # positives 0.4, 0.8; negatives 0.1, 0.5, 0.8: pairs won 1 + 0 + 0 | 1 + 1 + 0.5 → 3.5 / 6
    assert roc_auc([1, 1, 0, 0, 0], [0.4, 0.8, 0.1, 0.5, 0.8]) == pytest.approx(3.5 / 6)


def test_auc_matches_all_pairs_on_random_data():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300), rng.integers(0, 20, 300).astype(float)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert roc_auc(y, s) == pytest.approx(pairs)


@pytest.mark.parametrize(
    "labels, scores, message",
    [([1, 1], [0.1, 0.2], "both positive and negative"), ([0, 2], [0.1, 0.2], "0/1")],
)
def test_auc_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(labels, scores)


def test_ece_hand_case():
    # two bins used (of 2): [0, 0.5) holds p 0.2, 0.2 with labels 0, 1 → |0.5 − 0.2| = 0.3;
    # [0.5, 1] holds p 0.9, 0.9, 0.9, 0.9 with labels 1, 1, 1, 0 → |0.75 − 0.9| = 0.15
    probs = [0.2, 0.2, 0.9, 0.9, 0.9, 0.9]
    labels = [0, 1, 1, 1, 1, 0]
    assert expected_calibration_error(labels, probs, bins=2) == pytest.approx(
        (2 * 0.3 + 4 * 0.15) / 6
    )
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([0, 1], [0.2, 1.5])


def test_platt_recovers_the_logistic_model_that_drew_the_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, 20000)
    y = rng.random(20000) < 1 / (1 + np.exp(-(0.5 * x - 1.0)))
    a, b = fit_platt(x, y)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.07)
    p = 1 / (1 + np.exp(-(a * x + b)))
    raw = 1 / (1 + np.exp(-x))
    assert expected_calibration_error(y, p) < 0.02 < expected_calibration_error(y, raw)
