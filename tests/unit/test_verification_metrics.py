"""Verification metrics checked against hand-worked cases and scikit-learn-free brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from appliance.eval.verification import eer, rates_at, roc_auc, tar_at_far


def brute_auc(g: np.ndarray, i: np.ndarray) -> float:
    pairs = list(itertools.product(g, i))
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


def test_auc_of_separable_reversed_and_tied_scores() -> None:
    assert roc_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert roc_auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5


def test_auc_matches_brute_force_on_random_scores() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        g = np.round(rng.normal(1, 1, rng.integers(1, 30)), 1)  # rounding makes ties
        i = np.round(rng.normal(0, 1, rng.integers(1, 30)), 1)
        assert roc_auc(g, i) == pytest.approx(brute_auc(g, i))


def test_tar_at_far_never_exceeds_the_far_and_reports_what_the_data_can_resolve() -> None:
    g = np.array([0.9, 0.8, 0.7, 0.4])
    i = np.array([0.1, 0.2, 0.3, 0.5, 0.75])
    point, finest = tar_at_far(g, i, far=0.2)  # one impostor (0.75) may pass
    assert finest == pytest.approx(0.2)
    assert point.far <= 0.2 and point.tar == 0.75  # threshold just above 0.5: 0.9, 0.8 and 0.7 pass
    point0, _ = tar_at_far(g, i, far=0.0)
    assert point0.far == 0.0 and point0.tar == 0.5  # above 0.75: 0.9 and 0.8


def test_rates_at_a_threshold_and_the_equal_error_rate() -> None:
    g, i = np.array([0.9, 0.8, 0.6, 0.3]), np.array([0.1, 0.2, 0.35, 0.7])
    at = rates_at(g, i, 0.5)
    assert (at.tar, at.far) == (0.75, 0.25)
    e = eer(g, i)
    assert abs((1 - e.tar) - e.far) <= 0.25
