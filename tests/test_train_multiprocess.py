"""`codeplan train` as two real processes (DDP over gloo on the CPU, `accelerate launch`): a
plan-head student, killed mid-run and resumed, ends with the same weights in both processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeplan.errors import SetupError
from codeplan.train import TrainConfig
from codeplan.train.outputs import checkpoints
from codeplan.train.setup import start_accelerator

ROOT = Path(__file__).resolve().parents[1]
PLANS = str(ROOT / "codeplan" / "data" / "sample" / "plans.jsonl")
STEPS = 40


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(student: Path, out: Path, *extra: str) -> subprocess.Popen:
    """Two processes on this machine, as docs/train.md says for machines without GPUs."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               "-m", "codeplan", "train", "--data", "sample", "--plans", PLANS, "--student", str(student),
               "--out", str(out), "--plan-head", "--max-steps", str(STEPS), "--save-every", "3",
               "--micro-batch-size", "2", "--lr", "1e-3", "--max-source-tokens", "256", "--max-target-tokens", "128",
               "--dtype", "float32", "--no-progress", *extra]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = open(out.parent / f"{out.name}.{time.monotonic_ns()}.log", "w+")  # a file: a full pipe would stall the run
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log = log
    return proc


def output_of(proc: subprocess.Popen, timeout: float = 240) -> str:
    proc.wait(timeout=timeout)
    proc.log.seek(0)
    text = proc.log.read()
    proc.log.close()
    return text


def finish(proc: subprocess.Popen) -> str:
    output = output_of(proc)
    assert proc.returncode == 0, output[-3000:]
    return output


def test_two_processes_train_one_replicated_plan_head_model_and_resume_after_a_kill(tiny_causal_lm, tmp_path):
    out = tmp_path / "run"
    first = launch(tiny_causal_lm, out)
    deadline = time.monotonic() + 180
    while not checkpoints(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # The whole run at once, as when its machine goes down. torch's launcher starts the ranks in
    # sessions of their own, so they are found through /proc, not through the process group.
    run = [first.pid, *descendants(first.pid)]
    for pid in run:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    output = output_of(first)
    gone_by = time.monotonic() + 60  # until the ranks are gone, rank 0 holds OUT's lock
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in run) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert checkpoints(out), (first.returncode, output[-3000:])
    assert not (out / "train_summary.json").exists()  # killed before the end

    resumed = finish(launch(tiny_causal_lm, out, "--resume"))
    assert "resuming from" in resumed
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == STEPS
    fingerprints = summary["replica_weights_sha256"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # both ranks hold the same model
    assert summary["plan_model"] == "plan_model" and (out / "plan_model" / "config.json").is_file()
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
             if "step" in json.loads(line) and "loss" in json.loads(line)]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # no step logged twice after the resume


def test_processes_that_are_not_connected_are_refused(tiny_causal_lm, tmp_path, monkeypatch):
    # `accelerate launch --multi_gpu` without GPUs and without ACCELERATE_USE_CPU starts processes
    # that each train alone (and overwrite each other's OUT): refused before anything is written.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    cfg = TrainConfig(data={"path": "sample"}, plans=PLANS, student=str(tiny_causal_lm), out=str(tmp_path / "x"),
                      max_steps=1, progress=False, logging_dir=None)
    with pytest.raises(SetupError, match="ACCELERATE_USE_CPU"):
        start_accelerator(cfg)
