"""RunningMeanStd: merging batches gives the mean and variance of all the data seen, and normalising
uses them with the documented epsilon and clip."""

from __future__ import annotations

import numpy as np
import pytest

from npppo.normalization import RunningMeanStd


def test_a_new_instance_is_the_identity_transform():
    rms = RunningMeanStd((3,), clip=10.0)
    assert rms.count == 0
    np.testing.assert_array_equal(rms.mean, np.zeros(3))
    np.testing.assert_array_equal(rms.var, np.ones(3))
    x = np.array([[0.5, -2.0, 3.0]])
    np.testing.assert_allclose(rms.normalize(x), x / np.sqrt(1.0 + 1e-8), rtol=1e-15)


@pytest.mark.parametrize("sizes", [[7], [1, 1, 1], [5, 1, 40, 3], [200, 2]])
def test_merged_batches_equal_the_statistics_of_the_joined_data(sizes):
    rng = np.random.default_rng(len(sizes))
    # batches of different scale and offset per column, so that each merge term matters
    batches = [rng.normal(loc=[3.0, -1.0], scale=[0.5, 4.0], size=(n, 2)) + k for k, n in enumerate(sizes)]
    rms = RunningMeanStd((2,), clip=10.0)
    for batch in batches:
        rms.update(batch)
    joined = np.concatenate(batches)
    assert rms.count == joined.shape[0]
    np.testing.assert_allclose(rms.mean, joined.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rms.var, joined.var(axis=0), rtol=1e-12)


def test_an_empty_batch_changes_nothing():
    rms = RunningMeanStd((2,), clip=10.0)
    rms.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    before = (rms.mean.copy(), rms.var.copy(), rms.count)
    rms.update(np.zeros((0, 2)))
    np.testing.assert_array_equal(rms.mean, before[0])
    np.testing.assert_array_equal(rms.var, before[1])
    assert rms.count == before[2]


def test_normalize_is_clipped_standardisation_with_the_running_statistics():
    rms = RunningMeanStd((2,), clip=1.5)
    rms.update(np.array([[0.0, 10.0], [2.0, 14.0], [4.0, 12.0]]))  # mean [2, 12], var [8/3, 8/3]
    std = np.sqrt(8.0 / 3.0 + 1e-8)
    x = np.array([[3.0, 12.5], [100.0, -100.0], [2.0 - 1.4 * std, 12.0]])
    expected = np.array([[1.0 / std, 0.5 / std], [1.5, -1.5], [-1.4, 0.0]])
    np.testing.assert_allclose(rms.normalize(x), expected, rtol=1e-12)
