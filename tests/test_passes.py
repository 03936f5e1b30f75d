"""Where the update's critic passes run (npppo.passes.passes_for), chosen from the config and, for
whole-episode batches, from each batch's length."""

from __future__ import annotations

import numpy as np
import pytest

from npppo import presets
from npppo.passes import ByStepRows, CriticData, SerialPasses, ThreadedPasses, passes_for


class CriticWorker:
    """Stands for backends.local.WorkerCriticPasses: records the jobs it is given."""

    map_blocks = map

    def __init__(self) -> None:
        self.started, self.closed = [], False

    def start_critic(self, twins, optimizer, data, *rest) -> None:
        self.started.append(data.obs.shape[0])

    def close(self) -> None:
        self.closed = True


def fixed_steps(steps: int, batch_size: int | None, **changes):
    return presets.get("pendulum").replace(episodes_per_batch=None, steps_per_batch=steps, batch_size=batch_size,
                                           **changes)


@pytest.mark.parametrize(("config", "workers", "expected"), [
    (fixed_steps(2048, 64), 1, SerialPasses),  # one worker: nothing beside the actor
    (fixed_steps(2048, 512), 2, ThreadedPasses),  # long steps: threads
    (fixed_steps(2048, 64), 2, CriticWorker),  # short steps: the critic in worker 0
    (fixed_steps(200, 512), 2, CriticWorker),  # a minibatch bigger than the batch: the batch's rows count
    (fixed_steps(2048, 64, recompute_advantages=True), 2, SerialPasses),  # alternating epochs: in the learner
    (presets.get("seed"), 2, ByStepRows),  # whole episodes: by each batch's length
])
def test_passes_for_picks_by_rows_per_step(config, workers, expected):
    worker = CriticWorker()
    passes = passes_for(config, workers, worker)
    assert passes is worker if expected is CriticWorker else type(passes) is expected
    passes.close()


def test_without_a_critic_worker_short_steps_run_serially():
    passes = passes_for(fixed_steps(2048, 64), 2)  # Ray: no worker takes the critic's passes
    assert type(passes) is SerialPasses


def test_whole_episode_batches_choose_by_each_batch(monkeypatch):
    worker = CriticWorker()
    passes = passes_for(presets.get("seed"), 2, worker)
    started = []
    monkeypatch.setattr(ThreadedPasses, "start_critic", lambda self, twins, optimizer, data, *rest:
                        started.append(data.obs.shape[0]))
    for rows in (8000, 100, 300):
        data = CriticData(np.zeros((rows, 3)), np.zeros(rows), np.zeros(rows))
        passes.start_critic(None, None, data, 1.0, 0, 0)
    assert started == [8000, 300] and worker.started == [100]
    passes.close()
    assert worker.closed
