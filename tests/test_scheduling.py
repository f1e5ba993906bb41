"""Runs a scheduler can stop, repeat and retry (issue 17): one run per output (locks), SIGTERM handled
like Ctrl-C, a run killed with SIGKILL and re-run writing what a run never interrupted writes, and a
full disk ending in a clear error and a file the next run resumes from."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.config import DataConfig
from codeplan.distill import DistillConfig, distill
from codeplan.evaluate import EvaluateConfig, evaluate
from codeplan.generate import GenerateConfig, generate
from codeplan.jsonl import WriteFailed, read_jsonl
from codeplan.output_lock import OutputInUse, hold_output, lock_path
from codeplan.problems import Problem, TestCase, write_problems
from test_distill import _problems

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLI = [sys.executable, "-c", "from codeplan.cli import app; app()"]
HOLD = ("import sys, time\nfrom codeplan.output_lock import hold_output\n"
        "with hold_output(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _lines(*paths: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def _start(command: list[str], watch: list[Path], lines: int, **popen: Any) -> subprocess.Popen:
    """`command` in its own process, returned once the watched files hold `lines` lines (or it ended)."""
    # One torch thread, as in this process (one_torch_thread): log-probabilities summed in another
    # order differ in the last bits, and the records are compared exactly.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"}, **popen)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and _lines(*watch) < lines:
        time.sleep(0.01)
    return process


def _kill_at(command: list[str], watch: list[Path], points: tuple[int, ...]) -> list[int]:
    """Run `command` and SIGKILL it once the watched files hold `point` lines, once per point (each
    run resuming the last one's output); the lines on file after each kill."""
    seen = []
    for point in points:
        process = _start(command, watch, point, stderr=subprocess.DEVNULL)
        process.kill()
        process.wait()
        seen.append(_lines(*watch))
    return seen


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding the lock on `path` (returned once it does)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"held\n"
    return process


def _without_seconds(value: Any) -> Any:
    """Records minus wall-clock and CPU times (`seconds`, `cpu_seconds`), the one thing a resumed run
    may write differently."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k not in ("seconds", "cpu_seconds")}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _records(path: Path) -> list[dict]:
    return _without_seconds(read_jsonl(path)) if path.exists() else []


# ---- locks --------------------------------------------------------------------------------------


def test_a_second_run_on_a_locked_output_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 1)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"problem_id": "p0", "code": "print('ok')"}) + "\n")
    out = tmp_path / "results.json"
    holder = _holder(out)
    try:
        result = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--samples", str(samples), "--out", str(out),
                                          "--no-progress"])
        assert result.exit_code == 2, result.output
        message = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(message) == 1 and str(out) in message[0] and f"PID {holder.pid}" in message[0]
        assert not out.exists()
        # `codeplan run` locks its run folder the same way.
        run_dir = tmp_path / "run"
        holder_run = _holder(run_dir)
        try:
            config = tmp_path / "run.yaml"
            config.write_text(f"name: r\nout: {run_dir}\nplans: sample\nstudent: some/model\n"
                              "data: {train: {path: sample}, test: {path: sample}}\n")
            result = CliRunner().invoke(app, ["run", str(config)])
            assert result.exit_code == 2 and f"PID {holder_run.pid}" in result.output and str(run_dir) in result.output
        finally:
            holder_run.kill()
            holder_run.wait()
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock file is left, and the next run takes it over and says so.
    assert lock_path(out).exists()
    result = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--samples", str(samples), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"stale lock file from PID {holder.pid}" in result.output
    assert json.loads(out.read_text())["num_samples"] == 1 and not lock_path(out).exists()


def test_locks_nest_within_a_process_and_lock_only_their_own_output(tmp_path: Path) -> None:
    with hold_output(tmp_path / "run"):
        with hold_output(tmp_path / "run"), hold_output(tmp_path / "run" / "samples.jsonl"):
            pass
        assert lock_path(tmp_path / "run").exists()  # the outer hold still has it
        holder = _holder(tmp_path / "other.jsonl")
        try:
            with pytest.raises(OutputInUse, match=f"PID {holder.pid}"):
                with hold_output(tmp_path / "other.jsonl"):
                    pass
        finally:
            holder.kill()
            holder.wait()
    assert not lock_path(tmp_path / "run").exists()


# ---- signals ------------------------------------------------------------------------------------


def test_sigterm_stops_like_ctrl_c_with_status_143_and_whole_records(tmp_path: Path) -> None:
    from test_llm_openai import FakeTeacher

    data = _problems(tmp_path / "problems.jsonl", 20)
    out = tmp_path / "plans.jsonl"
    with FakeTeacher(delay=0.1) as server:
        command = CLI + ["distill", "--data", str(data), "--out", str(out), "--teacher-url", server.url,
                         "--teacher-model", "teacher", "--concurrency", "2", "--no-progress"]
        process = _start(command, [out], 2, stderr=subprocess.PIPE)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143 and b"interrupted" in stderr, stderr.decode()
    assert out.read_text().endswith("\n") and 2 <= len(read_jsonl(out)) < 40
    assert not lock_path(out).exists()


def test_a_second_signal_during_clean_up_stops_at_once() -> None:
    script = ("import os, signal, time\nfrom codeplan.interrupts import Interrupted, stop_on_signals\n"
              "with stop_on_signals():\n    try:\n        os.kill(os.getpid(), signal.SIGTERM)\n        time.sleep(30)\n"
              "    except Interrupted as err:\n        print('interrupted by', err.signum, flush=True)\n"
              "        os.kill(os.getpid(), signal.SIGINT)  # a second signal while cleaning up\n"
              "        time.sleep(30)\n        print('cleaned up')\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGINT and done.stdout == b"interrupted by 15\n", done.stderr.decode()
    assert time.monotonic() - started < 20


def test_sigterm_during_training_saves_a_checkpoint_and_the_resumed_weights_match(tiny_causal_lm: Path,
                                                                                  tmp_path: Path) -> None:
    from safetensors.torch import load_file
    from test_train import SAMPLE_PLANS, make_cfg
    import torch

    from codeplan.train import train

    settings = dict(max_steps=8, grad_accum=2, val_fraction=0, save_every=500)  # the CLI default
    full = tmp_path / "full"
    train(make_cfg(tiny_causal_lm, full, **settings))
    cut = tmp_path / "cut"
    command = CLI + ["train", "--data", "sample", "--plans", SAMPLE_PLANS, "--student", str(tiny_causal_lm),
                     "--out", str(cut), "--max-steps", "8", "--micro-batch-size", "4", "--grad-accum", "2", "--lr", "1e-3",
                     "--max-source-tokens", "256", "--max-target-tokens", "128", "--val-fraction", "0", "--no-progress"]
    process = _start(command, [cut / "train_log.jsonl"], 1, stderr=subprocess.PIPE)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr.decode()[-2000:]
    assert list((cut / "checkpoints").glob("step-*")) and not (cut / "train_summary.json").exists()
    train(make_cfg(tiny_causal_lm, cut, resume=True, **settings))
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


# ---- SIGKILL at several points, then resume: the records of a run never interrupted ----------------


def _generate_cfg(model: Path, out: Path, strategy: str) -> GenerateConfig:
    return GenerateConfig(data=DataConfig(path="sample", split="test", limit=3), model=str(model), out=str(out),
                          strategy=strategy, num_plans=2, codes_per_plan=1, num_samples=2, plan_max_tokens=12,
                          code_max_tokens=16, judge={"timeout": 2.0}, progress=False, seed=7)


def _generate_command(model: Path, out: Path, strategy: str) -> list[str]:
    return CLI + ["generate", "--model", str(model), "--data", "sample", "--split", "test", "--limit", "3", "--out", str(out),
                  "--strategy", strategy, "--num-plans", "2", "--codes-per-plan", "1", "--num-samples", "2",
                  "--plan-max-tokens", "12", "--code-max-tokens", "16", "--judge-timeout", "2.0", "--no-progress",
                  "--seed", "7"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["direct", "plan-sampling"])
def test_generate_killed_twice_then_resumed_writes_the_uninterrupted_records(tiny_causal_lm: Path, tmp_path: Path,
                                                                            strategy: str) -> None:
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    generate(_generate_cfg(tiny_causal_lm, whole, strategy))
    # Kills after the first sample line (a problem half written) and after the second problem's first line.
    seen = _kill_at(_generate_command(tiny_causal_lm, cut, strategy), [cut], (1, 3))
    assert seen[-1] < 6, "the run finished before the last kill: nothing was tested"
    generate(_generate_cfg(tiny_causal_lm, cut, strategy))
    assert _records(cut) == _records(whole)  # same samples, same order
    plans = lambda path: _records(path.with_name(path.stem + ".plans.jsonl"))  # noqa: E731
    assert plans(cut) == plans(whole)


@pytest.mark.slow
def test_distill_killed_twice_then_resumed_writes_the_uninterrupted_records(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = _problems(tmp_path / "problems.jsonl", 3)
    cfg = lambda out: DistillConfig(data=DataConfig(path=str(data)), out=str(out), teacher=f"hf:{tiny_causal_lm}",  # noqa: E731
                                    max_tokens=8, temperature=1.0, max_attempts=2, backend={"batch_size": 1},
                                    progress=False)
    whole, cut = tmp_path / "whole" / "plans.jsonl", tmp_path / "cut" / "plans.jsonl"
    distill(cfg(whole))
    side = lambda out: [out, out.with_name("plans.failures.jsonl")]  # noqa: E731
    assert _lines(*side(whole)) == 6
    command = CLI + ["distill", "--data", str(data), "--out", str(cut), "--teacher", f"hf:{tiny_causal_lm}",
                     "--max-tokens", "8", "--temperature", "1.0", "--max-attempts", "2", "--batch-size", "1", "--no-progress"]
    seen = _kill_at(command, side(cut), (1, 3))
    assert seen[-1] < 6, "the run finished before the last kill: nothing was tested"
    distill(cfg(cut))
    # A local teacher answers units in order: the same records in the same order.
    for a, b in zip(side(whole), side(cut)):
        assert _records(b) == _records(a)


@pytest.mark.slow
def test_evaluate_killed_twice_then_resumed_gives_the_uninterrupted_results(tmp_path: Path) -> None:
    data = tmp_path / "problems.jsonl"
    write_problems(data, [Problem(id=f"p{k}", statement="Print ok.", kind="stdin",
                                  hidden_tests=[TestCase(input="", output="ok\n")]) for k in range(3)])
    samples = tmp_path / "samples.jsonl"
    codes = ["import time\ntime.sleep(0.2)\nprint('ok')\n", "import time\ntime.sleep(0.2)\nprint('no')\n"]
    samples.write_text("".join(json.dumps({"problem_id": f"p{k}", "sample_index": i, "code": f"{code}# p{k}\n"}) + "\n"
                               for k in range(3) for i, code in enumerate(codes)))
    cfg = lambda out: EvaluateConfig(data=DataConfig(path=str(data)), samples=str(samples), out=str(out),  # noqa: E731
                                     k=[1, 2], progress=False, judge={"workers": 1})
    whole, cut = tmp_path / "whole" / "results.json", tmp_path / "cut" / "results.json"
    evaluate(cfg(whole))
    cache = cut.with_name("results.json.cache.jsonl")
    command = CLI + ["evaluate", "--data", str(data), "--samples", str(samples), "--out", str(cut), "--k", "1,2",
                     "--workers", "1", "--no-progress"]
    seen = _kill_at(command, [cache], (1, 3))
    assert seen[-1] < 6 and not cut.exists(), "the run finished before the last kill: nothing was tested"
    evaluate(cfg(cut))
    expected, got = json.loads(whole.read_text()), json.loads(cut.read_text())
    expected["config"].pop("samples"), got["config"].pop("samples")
    # The judge's cost differs (the killed sessions' time counts); every verdict and metric does not.
    sessions = {record["session"] for record in read_jsonl(cache) if "session" in record}
    assert got.pop("cost")["sessions"] == len(sessions) >= 2 and expected.pop("cost")["sessions"] == 1
    assert got == expected and got["verdicts"] == {"pass": 3, "wrong_answer": 3}


# ---- a full disk --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_ends_with_a_clear_error_and_the_next_run_resumes(tiny_causal_lm: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    cfg = lambda out: GenerateConfig(data=DataConfig(path="sample", split="test", limit=3), model=str(tiny_causal_lm),  # noqa: E731
                                     out=str(out), strategy="direct", num_samples=6, code_max_tokens=24, progress=False, seed=7)
    generate(cfg(whole))
    size = whole.stat().st_size
    assert size > 4096, "the samples must need more than one page for the disk to fill part way"
    disk = tmp_path / "disk"
    disk.mkdir()
    # A tmpfs with room for the lock file (one page) and all but the last page of the samples.
    pages = 1 + size // 4096
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command here to make a small tmpfs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages * 4}k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}")
    try:
        out = disk / "samples.jsonl"
        with pytest.raises(WriteFailed) as failed:
            generate(cfg(out))
        assert str(out) in str(failed.value) and "No space left on device" in str(failed.value)
        text = out.read_text()
        assert text.endswith("\n") and 0 < len(read_jsonl(out)) < 18  # whole records only, some of them
        assert not lock_path(out).exists()
        subprocess.run(["mount", "-o", "remount,size=1m", str(disk)], check=True)
        generate(cfg(out))
        assert _records(out) == _records(whole)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
