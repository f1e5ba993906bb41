"""The judge on Ray (`executor="ray"`), on a local cluster started here (127.0.0.1, 2 CPUs): the
same verdicts as the local judge, a judge actor killed mid-run, and evaluate resuming after an
interruption through its cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from codeplan import evaluate as evaluate_module
from codeplan.config import DataConfig
from codeplan.evaluate import EvaluateConfig, evaluate
from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.problems import write_problems
from test_judge import CALL, HUMANEVAL, MBPP, PAIRS, PLUS, REVERSE, SUM

PROGRAMS = [
    (SUM, "a, b = map(int, input().split())\nprint(a + b)\n"),
    (SUM, "a, b = map(int, input().split())\nprint(a * b)\n"),
    (SUM, "import sys\nsys.stdin = open('input.txt')\na, b = map(int, input().split())\nprint(a + b)\n"),
    (SUM, "raise ValueError('boom')\n"),
    (SUM, "print(1 +)\n"),
    (REVERSE, "input()\nprint(*reversed(input().split()))\n"),
    (REVERSE, "print(input())\n"),
    (CALL, "def add(a, b):\n    return a + b\n"),
    (CALL, "class Solution:\n    def add(self, a, b):\n        return b + a\n"),
    (CALL, "def plus(a, b):\n    return a + b\n"),
    (PAIRS, "def pairs(n):\n    return [(i, i + 1) for i in range(n)]\n"),
    (MBPP, "import math\ndef square(x):\n    return x * x\n"),
    (MBPP, "import math\ndef square(x):\n    return abs(x) * 2\n"),
    (MBPP, "class Any:\n    def __eq__(self, other):\n        return True\n    def __repr__(self):\n        return 'Any'\n"
           "def square(x):\n    return Any()\n"),
    (HUMANEVAL, "def inc(x):\n    return x + 1\n"),
    (HUMANEVAL, "def inc(x):\n    return x\n"),
    (PLUS, "def half(x):\n    return x / 2\n"),  # expected outputs derived from PLUS's reference solution
    (PLUS, "def half(x):\n    return x // 2\n"),
]
TASKS = [JudgeTask(problem=problem, code=code) for problem, code in PROGRAMS]
CPU_FREE = ("cpu_seconds",)  # the only field that differs from run to run


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, address="local", _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_verdicts():
    with Judge(JudgeConfig(workers=2, timeout=2.0)) as judge:
        return [comparable(result) for result in judge.run(TASKS)]


def comparable(result) -> dict:
    return {key: value for key, value in result.to_record().items() if key not in CPU_FREE}


def ray_judge(**settings) -> Judge:
    return Judge(JudgeConfig(executor="ray", workers=1, ray_actors=2, timeout=2.0, **settings))


def test_ray_verdicts_equal_the_local_judges(cluster, local_verdicts):
    seen: list[int] = []
    with ray_judge(ray_batch=3) as judge:
        results = judge.run(TASKS, on_result=lambda index, _: seen.append(index))
        derived = judge.references.outputs(PLUS)
    assert [comparable(result) for result in results] == local_verdicts
    assert sorted(seen) == list(range(len(TASKS)))  # progress: each program reported once
    assert [r["verdict"] for r in local_verdicts][:5] == ["pass", "wrong_answer", "pass", "runtime_error", "compile_error"]
    # The reference outputs were derived on an actor and came back to the driver (for evaluate's cache).
    assert derived is not None and derived[0] == [0.5, 1.5, 0.1]


def test_a_killed_actor_loses_nothing(cluster, local_verdicts):
    with ray_judge(ray_batch=2) as judge:
        victim = judge._ray.actors[0]

        def kill_once(index, result):
            if victim in judge._ray.actors:
                ray.kill(victim)  # mid-run: its batches in flight are lost with it

        results = judge.run(TASKS, on_result=kill_once)
        assert judge._ray.retried >= 1 and victim not in judge._ray.actors and len(judge._ray.actors) == 2
    assert [comparable(result) for result in results] == local_verdicts


class Interrupted(tqdm_base := evaluate_module.tqdm):
    """evaluate's progress bar, Ctrl-C'd after the third verdict."""

    updates = 0

    def update(self, n=1):
        super().update(n)
        Interrupted.updates += n
        if Interrupted.updates >= 3:
            raise KeyboardInterrupt


def test_evaluate_on_ray_resumes_after_an_interruption(cluster, tmp_path: Path, monkeypatch):
    write_problems(tmp_path / "problems.jsonl", [SUM, CALL, MBPP])
    samples = [(SUM.id, code) for problem, code in PROGRAMS[:5]] + [(CALL.id, PROGRAMS[7][1]), (MBPP.id, PROGRAMS[12][1])]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps({"problem_id": p, "code": c}) + "\n" for p, c in samples))

    def config(out: str, **judge) -> EvaluateConfig:
        return EvaluateConfig(data=DataConfig(path=str(tmp_path / "problems.jsonl")), samples=str(tmp_path / "samples.jsonl"),
                              out=str(tmp_path / out), k=[1], progress=False, judge={"timeout": 2.0, **judge})

    on_ray = {"executor": "ray", "workers": 1, "ray_actors": 2, "ray_batch": 1}
    monkeypatch.setattr(evaluate_module, "tqdm", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(config("ray.json", **on_ray))
    cache = tmp_path / "ray.json.cache.jsonl"
    assert len(cache.read_text().splitlines()) == 3
    monkeypatch.setattr(evaluate_module, "tqdm", tqdm_base)
    judged: list[int] = []
    run = Judge.run
    monkeypatch.setattr(evaluate_module.Judge, "run", lambda self, tasks, on_result=None: judged.append(len(tasks)) or run(self, tasks, on_result))
    resumed = evaluate(config("ray.json", **on_ray))
    assert judged == [len(samples) - 3]  # only what the interrupted run had not judged
    assert len(cache.read_text().splitlines()) == len(samples)
    local = evaluate(config("local.json", workers=2))
    assert resumed["problems"] == local["problems"] and resumed["verdicts"] == local["verdicts"]
