"""Which task and which examples each micro-batch trains on: a pure function of the seed, so a
resumed run replays exactly the same sequence from any micro-step.

- `alternate` (the release): micro-batches cycle through the tasks (code on even micro-steps, plan
  on odd ones; with the third task, code / plan / plan-conditioned code). An epoch is one pass
  over the largest task; smaller tasks cycle.
- `proportional`: each micro-batch holds one task, tasks drawn in proportion to their example
  counts; an epoch is one pass over every task's examples.
Each task reads its own stream: a fresh shuffle of its examples every pass.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from codeplan.train.config import Task


def _stream(size: int, seed: int, task: str) -> Iterator[int]:
    passes = 0
    while True:
        order = list(range(size))
        random.Random(f"{seed}:{task}:{passes}").shuffle(order)
        yield from order
        passes += 1


def micro_batches_per_epoch(sizes: dict[Task, int], schedule: str, batch: int) -> int:
    if schedule == "alternate":
        return len(sizes) * math.ceil(max(sizes.values()) / batch)
    return sum(math.ceil(n / batch) for n in sizes.values())


def iter_micro_batches(sizes: dict[Task, int], tasks: list[Task], schedule: str, batch: int,
                       seed: int) -> Iterator[tuple[Task, list[int]]]:
    """Endless (task, example indices) micro-batches; `batch` is the global micro-batch (all ranks)."""
    tasks = [t for t in tasks if sizes.get(t, 0) > 0]
    streams = {t: _stream(sizes[t], seed, t) for t in tasks}
    epoch = 0
    while True:
        if schedule == "alternate":
            order = [tasks[i % len(tasks)] for i in range(micro_batches_per_epoch({t: sizes[t] for t in tasks}, schedule, batch))]
        else:
            order = [t for t in tasks for _ in range(math.ceil(sizes[t] / batch))]
            random.Random(f"{seed}:order:{epoch}").shuffle(order)
        for task in order:
            yield task, [next(streams[task]) for _ in range(batch)]
        epoch += 1
