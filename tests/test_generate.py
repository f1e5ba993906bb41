"""`codeplan generate` on the tiny causal model: both strategies, budget, resume after a kill."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from codeplan.cli import app
from codeplan.config import DataConfig
from codeplan.errors import InputError
from codeplan.generate import GenerateConfig, generate
from codeplan.samples import finished_problems, sidecar_paths

pytestmark = pytest.mark.slow


def _cfg(model: Path, out: Path, **over) -> GenerateConfig:
    values = dict(data=DataConfig(path="sample", split="test", limit=3), model=str(model), out=str(out),
                  strategy="direct", num_plans=2, codes_per_plan=2, num_samples=2, plan_max_tokens=12,
                  code_max_tokens=12, judge={"timeout": 2.0}, progress=False, seed=7)
    values.update(over)
    return GenerateConfig(**values)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_direct_sampling_writes_n_programs_per_problem_and_resumes_after_a_kill(tiny_causal_lm: Path, tmp_path: Path):
    out = tmp_path / "samples.jsonl"
    summary = generate(_cfg(tiny_causal_lm, out))
    rows = _rows(out)
    assert summary["problems"] == 3 and summary["programs"] == 6
    assert Counter(r["problem_id"] for r in rows) == {pid: 2 for pid in {r["problem_id"] for r in rows}}
    assert all(r["strategy"] == "direct" and "plan" not in r for r in rows)
    # Budget: one model call and two sequences per problem, tokens counted.
    assert summary["budget"]["model_calls"] == 3 and summary["budget"]["sequences"] == 6
    assert summary["budget"]["completion_tokens"] > 0
    assert json.loads(sidecar_paths(out)[1].read_text())["programs"] == 6
    # CPU cost per problem, on the problem's own lines: what a reader needs to compare arms' cost.
    assert all(r["budget"]["cpu_seconds"] > 0 for r in rows)
    firsts = [r for r in rows if r["sample_index"] == 0]
    assert summary["budget"]["cpu_seconds"] == pytest.approx(sum(r["budget"]["cpu_seconds"] for r in firsts), abs=1e-3)

    # A run killed while writing problem 2: one of its lines made it, the next one is torn.
    lines = out.read_text().splitlines(keepends=True)
    first_problem = [line for line in lines if json.loads(line)["problem_id"] == rows[0]["problem_id"]]
    second = [line for line in lines if json.loads(line)["problem_id"] == rows[2]["problem_id"]]
    out.write_text("".join(first_problem) + second[0] + second[1][:25])
    assert finished_problems(out, "direct") == {rows[0]["problem_id"]}
    resumed_summary = generate(_cfg(tiny_causal_lm, out))
    resumed = _rows(out)
    assert len(resumed) == 6 and Counter(r["problem_id"] for r in resumed) == Counter(r["problem_id"] for r in rows)
    # The cost survives the resume: the kept problem's budget from the first run, the others' anew.
    assert resumed[0]["budget"] == rows[0]["budget"]
    assert resumed_summary["budget"]["cpu_seconds"] == pytest.approx(
        sum(r["budget"]["cpu_seconds"] for r in resumed if r["sample_index"] == 0), abs=1e-3)
    # Seeds depend on the problem, not on the run's history: the resumed run samples the same programs.
    by_key = lambda rs: {(r["problem_id"], r["sample_index"]): r["code"] for r in rs}  # noqa: E731
    assert by_key(resumed) == by_key(rows)

    # A finished file is left alone, its summary too (a committed one stays as it was); another
    # strategy into the same file is refused.
    summary_file = sidecar_paths(out)[1].read_text()
    assert generate(_cfg(tiny_causal_lm, out))["programs"] == 6 and len(_rows(out)) == 6
    assert sidecar_paths(out)[1].read_text() == summary_file
    with pytest.raises(InputError, match="strategy"):
        generate(_cfg(tiny_causal_lm, out, strategy="plan-sampling"))
    with pytest.raises(InputError, match="samples per problem"):
        generate(_cfg(tiny_causal_lm, out, num_samples=3))


def test_plan_sampling_judges_programs_per_plan_and_records_the_choice(tiny_causal_lm: Path, tmp_path: Path):
    out = tmp_path / "samples.jsonl"
    summary = generate(_cfg(tiny_causal_lm, out, strategy="plan-sampling", batch_problems=2))
    rows = _rows(out)
    assert len(rows) == 6 and summary["strategy"] == "plan-sampling"
    for row in rows:
        selection = row["selection"]
        assert len(selection["scores"]) == 2 and row["plan_index"] == selection["chosen"]
        assert selection["rule"] in ("pass-share", "likelihood")
        if selection["rule"] == "pass-share":  # the problem has example tests: 2 programs judged per plan
            assert all(score["programs"] == 2 for score in selection["scores"])
        assert isinstance(row["plan"], str) and row["budget"]["model_calls"] >= 2
    # Budget: K plans + K*M judged programs + N finals per problem with example tests.
    with_tests = [r for r in rows if r["selection"]["rule"] == "pass-share" and r["sample_index"] == 0]
    assert with_tests, "the sample test split has problems with public example tests"
    assert all(r["budget"]["sequences"] == 2 + 2 * 2 + 2 and r["budget"]["programs_judged"] == 4 for r in with_tests)
    assert all(r["budget"]["model_calls"] == 1 + 2 + 1 for r in with_tests)
    # Every candidate plan with its programs' verdicts, one record a problem.
    plans = _rows(sidecar_paths(out)[0])
    assert len(plans) == 3 and all(len(p["candidates"]) == 2 for p in plans)
    judged = [prog for p in plans for c in p["candidates"] for prog in c["programs"]]
    assert judged and all(prog["verdict"] for prog in judged)
    # A tiny random model writes no working program: each judged program failed, with a reason.
    assert not any(prog["passed"] for prog in judged)


@pytest.mark.parametrize(("strategy", "chat"), [("direct", False), ("plan-sampling", False), ("direct", True)])
def test_samples_do_not_depend_on_how_problems_are_batched(tiny_causal_lm: Path, tmp_path: Path, strategy: str,
                                                           chat: bool):
    def run(batch_problems: int) -> tuple[dict, list]:
        out = tmp_path / f"b{batch_problems}.jsonl"
        generate(_cfg(tiny_causal_lm, out, data=DataConfig(path="sample", split="test", limit=4), strategy=strategy,
                      batch_problems=batch_problems, code_temperature=1.0, plan_temperature=1.0, code_max_tokens=16,
                      chat_template=chat))
        rows = {(r["problem_id"], r["sample_index"]): (r["code"], r.get("plan"), r.get("plan_index"))
                for r in _rows(out)}
        plans = [(p["problem_id"], [(c["plan"], [prog["code"] for prog in c["programs"]]) for c in p["candidates"]])
                 for p in _rows(sidecar_paths(out)[0])] if strategy == "plan-sampling" else []
        return rows, sorted(plans)

    alone, alone_plans = run(1)
    together, together_plans = run(4)
    assert len(alone) == 8 and together == alone
    assert together_plans == alone_plans  # every candidate plan and every judged program too
    # Sampling is live (temperature 1): the problems' programs are not all one text.
    assert len({code for code, _, _ in alone.values()}) > 2


def test_solve_route_queues_each_prompt_with_its_own_seed():
    import asyncio
    import threading

    from codeplan.llm import GenerationParams
    from codeplan.serve import _QueuedGenerator

    class State:
        model_name = "m"

        def __init__(self) -> None:
            self.jobs: list[tuple[str, object]] = []

        async def submit(self, kind, payload, params):
            self.jobs.append((payload, params))
            return f"{payload}:{params.seed}"

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        state = State()
        queued = _QueuedGenerator(state, loop, chat_template=False)
        assert queued.generate(["a", "b"], GenerationParams(n=2, seed=3)) == ["a:3", "b:4"]
        assert queued.generate(["a", "b"], GenerationParams(n=2, seed=3, seeds=(70, 12))) == ["a:70", "b:12"]
        # A job is one prompt: it carries a plain seed, never the call's list.
        assert all(params.seeds is None and params.n == 2 for _, params in state.jobs)
        with pytest.raises(ValueError, match="seeds"):
            queued.generate(["a", "b"], GenerationParams(seeds=(1,)))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_generate_cli_and_bad_settings(tiny_causal_lm: Path, tmp_path: Path):
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["generate", "--model", str(tiny_causal_lm), "--data", "sample", "--split", "test",
                                      "--limit", "1", "--out", str(out), "--strategy", "direct", "--num-samples", "1",
                                      "--config", str(_small_yaml(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "wrote 1 programs for 1 problems" in result.output and len(_rows(out)) == 1
    bad = CliRunner().invoke(app, ["generate", "--model", "openai:http://localhost:1/v1", "--data", "sample",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "model_name" in bad.output
    bad = CliRunner().invoke(app, ["generate", "--model", str(tiny_causal_lm), "--data", "sample", "--out", str(out),
                                   "--selection", "best"])
    assert bad.exit_code == 2 and "selection" in bad.output


def _small_yaml(folder: Path) -> Path:
    path = folder / "gen.yaml"
    path.write_text("code_max_tokens: 8\nprogress: false\n")
    return path


def test_sigkilled_generate_process_resumes_without_duplicates(tiny_causal_lm: Path, tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed.jsonl"
    (tmp_path / "gen.yaml").write_text("code_max_tokens: 24\nprogress: false\nseed: 7\n")
    command = [sys.executable, "-c", "from codeplan.cli import app; app()", "generate", "--model", str(tiny_causal_lm),
               "--data", "sample", "--split", "test", "--limit", "3", "--out", str(out), "--strategy", "direct",
               "--num-samples", "2", "--config", str(tmp_path / "gen.yaml")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 2:  # the first problem is on disk
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _rows(out) if out.exists() else []
    generate(_cfg(tiny_causal_lm, out, code_max_tokens=24))
    rows = _rows(out)
    counts = Counter((r["problem_id"], r["sample_index"]) for r in rows)
    assert len(rows) == 6 and set(counts.values()) == {1}
    # What the killed run had finished was kept, not redone.
    kept = {(r["problem_id"], r["sample_index"]): r["code"] for r in before}
    assert all({(r["problem_id"], r["sample_index"]): r["code"] for r in rows}[key] == code for key, code in kept.items()
               if Counter(k[0] for k in kept)[key[0]] == 2)


def test_student_trained_with_its_chat_template_is_prompted_through_it(tmp_path):
    from codeplan.generate import uses_chat_template
    from codeplan.strategies import ChatPrompts

    model = tmp_path / "student"
    model.mkdir()
    cfg = GenerateConfig(data={"path": "sample"}, model=str(model), out=str(tmp_path / "s.jsonl"))
    assert not uses_chat_template(cfg)  # no train_summary.json: plain prompts
    (model / "train_summary.json").write_text('{"prompt_format": {"chat_template": true}}')
    assert uses_chat_template(cfg)
    assert not uses_chat_template(cfg.model_copy(update={"chat_template": False}))  # the setting wins

    class Recorder:
        def chat(self, conversations, params):
            self.conversations = conversations
            return ["done"] * len(conversations)

    recorder = Recorder()
    assert ChatPrompts(recorder).generate(["[GEN_PLAN]\nQUESTION:\n..."], None) == ["done"]
    assert recorder.conversations == [[{"role": "user", "content": "[GEN_PLAN]\nQUESTION:\n..."}]]
