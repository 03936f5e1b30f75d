"""npppo.stats: the interquartile mean and the stratified bootstrap, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from npppo.stats import iqm, stratified_bootstrap_ci, summarize


def test_iqm_drops_a_quarter_from_each_end():
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # sorted 1..8, drop 1, 2 and 7, 8: mean(3, 4, 5, 6)
    assert iqm([1, 2, 3, 100, 1000]) == 35.0  # n = 5: drop one from each end, mean(2, 3, 100)
    assert iqm([10.0, 20.0, 60.0]) == 30.0  # n = 3: floor(3/4) = 0, the plain mean
    assert iqm([5.0]) == 5.0


def test_iqm_ignores_an_outlier_run():
    # sorted -5000, 98, 99, 100, 100, 100, 101, 102: the middle four are 99, 100, 100, 100
    assert iqm([100, 101, 99, 100, -5000, 100, 102, 98]) == 99.75


def test_bootstrap_of_identical_scores_is_a_point():
    assert stratified_bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert stratified_bootstrap_ci({"a": [1.0, 1.0], "b": [1.0]}) == (1.0, 1.0)


def test_bootstrap_of_two_runs_by_hand():
    # scores {0, 1}, statistic the mean of 2 draws: 0 with p 1/4, 0.5 with p 1/2, 1 with p 1/4, so the 2.5th
    # and 97.5th percentiles of many resamples are 0 and 1; and the 40th-60th percentile interval is 0.5
    assert stratified_bootstrap_ci([0.0, 1.0], statistic=np.mean) == (0.0, 1.0)
    assert stratified_bootstrap_ci([0.0, 1.0], statistic=np.mean, level=0.2) == (0.5, 0.5)


def test_stratification_keeps_each_task_s_run_count():
    # task a always contributes its single score 10, task b two draws from {0, 2}: the pooled mean of 3 scores is
    # (10 + b1 + b2) / 3 in {10/3, 12/3, 14/3}, never anything a pooled (unstratified) resample could give alone
    low, high = stratified_bootstrap_ci({"a": [10.0], "b": [0.0, 2.0]}, statistic=np.mean, resamples=500)
    assert (low, high) == pytest.approx((10 / 3, 14 / 3))


def test_bootstrap_is_seeded_and_brackets_the_iqm():
    scores = np.random.default_rng(0).normal(100.0, 20.0, size=10)
    first = stratified_bootstrap_ci(scores, seed=3)
    assert first == stratified_bootstrap_ci(scores, seed=3)
    assert first[0] < iqm(scores) < first[1]


def test_summarize_reports_mean_std_iqm_and_interval():
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert summary["n"] == 4 and summary["mean"] == 2.5 and summary["iqm"] == 2.5
    assert summary["std"] == pytest.approx(np.sqrt(1.25))
    assert summary["iqm_ci95"][0] <= 2.5 <= summary["iqm_ci95"][1]
