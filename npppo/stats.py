"""Aggregate scores over runs as the field now reports them (rliable; Agarwal et al. 2021, "Deep
Reinforcement Learning at the Edge of the Statistical Precipice"): the interquartile mean with a 95%
stratified-bootstrap confidence interval, beside mean ± std.

    scores = {"Hopper-v5": [2310.0, 2544.1, 1998.3], "Walker2d-v5": [...]}   # one score per run (seed)
    iqm(np.concatenate(list(scores.values())))
    low, high = stratified_bootstrap_ci(scores)

**IQM**: the mean of the middle half of the scores: sort them, drop ``floor(n/4)`` from each end, average
the rest (``scipy.stats.trim_mean(x, 0.25)``, which rliable uses). It is robust to an outlier run, yet
uses half the runs, unlike the median.

**Stratified bootstrap**: each resample draws, within every task (stratum) separately, as many runs as
that task has, with replacement, and computes the statistic over all the drawn scores together; the
interval is the 2.5th and 97.5th percentiles of the statistic over the resamples (the percentile
bootstrap). With one task it is the ordinary bootstrap over runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean of the scores (n,): the mean after dropping floor(n/4) from each end."""
    values = np.sort(np.asarray(scores, np.float64).ravel())
    if values.size == 0:
        raise ValueError("iqm of no scores")
    cut = values.size // 4
    return float(values[cut : values.size - cut].mean())


def stratified_bootstrap_ci(scores: Mapping[str, Sequence[float]] | Sequence[float],
                            statistic: Callable[[np.ndarray], float] = iqm, level: float = 0.95,
                            resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(low, high): the ``level`` percentile-bootstrap interval of ``statistic`` over all scores, resampling
    runs with replacement within each task. ``scores``: task -> scores of its runs, or one task's scores."""
    tasks = [np.asarray(s, np.float64).ravel() for s in (scores.values() if isinstance(scores, Mapping) else [scores])]
    if any(task.size == 0 for task in tasks):
        raise ValueError("every task needs at least one score")
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for r in range(resamples):
        stats[r] = statistic(np.concatenate([task[rng.integers(0, task.size, task.size)] for task in tasks]))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(scores: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean, std (population, over runs), IQM and its 95% bootstrap CI of one task's run scores."""
    values = np.asarray(scores, np.float64)
    low, high = stratified_bootstrap_ci(values)
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "iqm": iqm(values), "iqm_ci95": [low, high]}
