"""Training stage: both modes, both model kinds, plan head, LoRA, packing, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from codeplan.config import DataConfig
from codeplan.errors import InputError
from codeplan.problems import Problem, TestCase, write_problems
from codeplan.train import TrainConfig, train
from codeplan.train.schedule import iter_micro_batches

SAMPLE_PLANS = str(Path(__file__).resolve().parents[1] / "codeplan" / "data" / "sample" / "plans.jsonl")


def make_cfg(student: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(data=DataConfig(path="sample"), plans=SAMPLE_PLANS, student=str(student), out=str(out),
                  max_steps=2, micro_batch_size=4, grad_accum=1, lr=1e-3, max_source_tokens=256,
                  max_target_tokens=128, save_every=None, progress=False, logging_dir=None)
    values.update(overrides)
    return TrainConfig(**values)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_codeplan_causal_with_plan_head_saves_plain_hf_model_and_plan_model(tiny_causal_lm, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    cfg = make_cfg(tiny_causal_lm, out, max_steps=3, plan_head=True)
    assert train(cfg) == out
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["tasks"] == ["code", "plan"]  # the paper's two tasks by default
    assert set(summary["final_train_loss"]) == {"code", "plan"}
    assert summary["plan_model"] == "plan_model"
    saved = yaml.safe_load((out / "train_config.yaml").read_text())
    assert saved["plan_head"] is True and saved["lr"] == 1e-3 and saved["data"]["path"] == "sample"

    model = AutoModelForCausalLM.from_pretrained(out)
    plan_model = AutoModelForCausalLM.from_pretrained(out / "plan_model")
    plan_weight = load_file(str(out / "plan_head.safetensors"))["weight"]
    ids = torch.tensor([[3, 10, 40, 7, 99]])
    with torch.no_grad():
        hidden = model.model(ids).last_hidden_state
        # plan_model = main model with the trained plan head as its output layer
        assert torch.allclose(plan_model(ids).logits, hidden @ plan_weight.T, atol=1e-5)
        # and the two heads really trained apart
        assert not torch.allclose(model(ids).logits, plan_model(ids).logits, atol=1e-3)


def test_baseline_seq2seq_trains_code_task_only(tiny_seq2seq_lm, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    out = tmp_path / "base"
    train(make_cfg(tiny_seq2seq_lm, out, mode="baseline", max_steps=2, dtype="bfloat16"))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["tasks"] == ["code"] and summary["encoder_decoder"] is True
    assert summary["precision"] == "bf16" and summary["saved_dtype"] == "bfloat16"
    assert set(summary["data"]["examples"]) == {"code"}
    assert all(set(r["loss"]) == {"code"} for r in read_log(out))
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    before = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_lm)
    assert not torch.equal(model.lm_head.weight, before.lm_head.weight)


def test_seq2seq_plan_head_exports_equivalent_plan_model(tiny_seq2seq_lm, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM

    out = tmp_path / "s2s"
    train(make_cfg(tiny_seq2seq_lm, out, plan_head=True, plan_conditioned_code=False, max_steps=2))
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    plan_model = AutoModelForSeq2SeqLM.from_pretrained(out / "plan_model")
    weight = load_file(str(out / "plan_head.safetensors"))["weight"]
    ids = torch.tensor([[3, 10, 40, 7]])
    dec = torch.tensor([[1, 5, 6]])
    seen = []
    model.lm_head.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    with torch.no_grad():
        model(input_ids=ids, decoder_input_ids=dec)
        plan_logits = plan_model(input_ids=ids, decoder_input_ids=dec).logits
    # same body (T5's output scaling included), head swapped: logits = (LM-head input) @ plan_weight^T
    assert torch.allclose(plan_logits, seen[0] @ weight.T, atol=1e-5)


def test_lora_merged_into_plain_model(tiny_causal_lm, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    train(make_cfg(tiny_causal_lm, out, lora=True, lora_r=4, lora_alpha=8, lr=1e-2, max_steps=2,
                   gradient_checkpointing=True))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["trainable_parameters"] < summary["parameters"] / 2
    keys = load_file(str(out / "model.safetensors")).keys()
    assert not any("lora" in k for k in keys)
    model = AutoModelForCausalLM.from_pretrained(out)
    before = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    q_after = model.model.layers[0].self_attn.q_proj.weight
    q_before = before.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q_after, q_before)  # the adapter's update is in the merged weights
    assert torch.equal(model.model.embed_tokens.weight, before.model.embed_tokens.weight)  # frozen


def test_packed_loss_equals_padded_loss(tiny_causal_lm):
    from transformers import AutoModelForCausalLM

    from codeplan.train.collate import pack_batch, pad_batch
    from codeplan.train.examples import IGNORE, Encoded
    from codeplan.train.loop import forward_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    gen = torch.Generator().manual_seed(0)
    batch = []
    for n_src, n_tgt in [(7, 5), (12, 3), (4, 9), (20, 6), (5, 5)]:
        ids = torch.randint(2, 300, (n_src + n_tgt,), generator=gen).tolist()
        batch.append(Encoded("code", ids, [IGNORE] * n_src + ids[n_src:]))
    padded = pad_batch(batch, 1, encoder_decoder=False)
    packed = pack_batch(batch, 1, pack_length=32)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]  # several examples share a row
    assert packed["input_ids"].numel() < padded["input_ids"].numel()  # less padding compute
    assert packed["input_ids"].shape[1] <= 32
    with torch.no_grad():
        loss_padded, n_padded = forward_loss(model, padded, causal=True)
        loss_packed, n_packed = forward_loss(model, packed, causal=True)
        # without the position resets the examples would see each other: the loss must change
        leaky = {"input_ids": packed["input_ids"], "labels": packed["labels"]}
        loss_leaky, _ = forward_loss(model, leaky, causal=True)
    assert n_padded == n_packed == sum(e.num_target_tokens for e in batch)
    assert abs(loss_packed.item() - loss_padded.item()) < 1e-5
    assert abs(loss_leaky.item() - loss_padded.item()) > 1e-4


def test_packed_training_step_matches_unpacked(tiny_causal_lm, tmp_path):
    a = tmp_path / "pad"
    b = tmp_path / "pack"
    train(make_cfg(tiny_causal_lm, a, max_steps=2, val_fraction=0))
    train(make_cfg(tiny_causal_lm, b, max_steps=2, val_fraction=0, packing=True, pack_length=512))
    for ra, rb in zip(read_log(a), read_log(b), strict=True):
        for task, value in ra["loss"].items():
            assert rb["loss"][task] == pytest.approx(value, abs=1e-4)
    assert json.loads((b / "train_summary.json").read_text())["packing"] is True


def test_resume_continues_exactly(tiny_causal_lm, tmp_path, monkeypatch):
    import codeplan.train.loop as loop

    settings = dict(max_steps=4, save_every=2, grad_accum=2, val_fraction=0)
    full = tmp_path / "full"
    train(make_cfg(tiny_causal_lm, full, **settings))

    cut = tmp_path / "cut"
    original = loop.save_checkpoint
    interrupted = []

    def save_then_interrupt(accelerator, out, step, cfg):
        original(accelerator, out, step, cfg)
        if not interrupted:
            interrupted.append(step)
            raise KeyboardInterrupt  # Ctrl-C right after the step-2 checkpoint

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(tiny_causal_lm, cut, **settings))
    monkeypatch.setattr(loop, "save_checkpoint", original)
    assert interrupted == [2] and not (cut / "train_summary.json").exists()
    with pytest.raises(InputError, match="--resume"):
        train(make_cfg(tiny_causal_lm, cut, **settings))
    train(make_cfg(tiny_causal_lm, cut, resume=True, **settings))

    full_log, cut_log = read_log(full), read_log(cut)
    assert [r["step"] for r in cut_log] == [1, 2, 3, 4]
    for ra, rb in zip(full_log, cut_log, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-6)
    # Weights, optimizer state, scheduler, RNG and data order all come back: the same final weights.
    from safetensors.torch import load_file

    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


def test_finished_run_is_skipped_and_other_settings_refused(tiny_causal_lm, tmp_path):
    out = tmp_path / "done"
    train(make_cfg(tiny_causal_lm, out, mode="baseline", max_steps=1))
    stamp = (out / "train_summary.json").stat().st_mtime_ns
    train(make_cfg(tiny_causal_lm, out, mode="baseline", max_steps=1))
    assert (out / "train_summary.json").stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="max_steps"):
        train(make_cfg(tiny_causal_lm, out, mode="baseline", max_steps=2))


def test_summary_without_weights_is_trained_again(tiny_causal_lm, tmp_path):
    # An experiment commits train_summary.json but not the weights: a fresh clone must retrain, not
    # skip to an export that finds no model.
    out = tmp_path / "record"
    train(make_cfg(tiny_causal_lm, out, mode="baseline", max_steps=1))
    (out / "model.safetensors").unlink()
    (out / "train_summary.json").write_text('{"committed": "record"}')
    train(make_cfg(tiny_causal_lm, out, mode="baseline", max_steps=1))
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 1


def _write_bad_data(tmp_path: Path) -> tuple[Path, Path]:
    problems = [
        Problem(id="p1", statement="Print the sum of two integers.", kind="stdin",
                solutions=["a, b = map(int, input().split())\nprint(a + b)"],
                public_tests=[TestCase(input="1 2\n", output="3\n")]),
        Problem(id="p2", statement="Print hello.", kind="stdin", solutions=["print('hello')"]),
        Problem(id="p3", statement="No solution here.", kind="stdin", solutions=[]),
    ]
    data = tmp_path / "problems.jsonl"
    write_problems(data, problems)
    plans = tmp_path / "plans.jsonl"
    rows = [
        {"problem_id": "p1", "solution_index": 0, "plan": "1. Read a and b.\n2. Print a + b."},
        {"problem_id": "p2", "solution_index": 0, "plan": "1. Print hello."},
        {"problem_id": "ghost", "solution_index": 0, "plan": "1. Nothing."},
        {"problem_id": "p2", "solution_index": 0, "plan": "   "},
        {"problem_id": "p1", "solution_index": 5, "plan": "1. Out of range."},
    ]
    plans.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, plans


def test_bad_input_counted_and_skipped_or_strict_error(tiny_causal_lm, tmp_path):
    data, plans = _write_bad_data(tmp_path)
    out = tmp_path / "bad"
    train(make_cfg(tiny_causal_lm, out, data=DataConfig(path=str(data)), plans=str(plans), val_fraction=0,
                   max_steps=1, max_target_tokens=8))
    report = json.loads((out / "train_summary.json").read_text())["data"]
    assert report["problems_without_solutions"] == 1
    assert report["plans_unknown_problem"] == 1
    assert report["plans_empty"] == 1
    assert report["plans_bad_solution_index"] == 1
    assert report["examples"] == {"code": 2, "plan": 2}
    assert report["truncated"]["code"] >= 1  # the first solution is longer than 8 tokens

    skipped = tmp_path / "skip"
    train(make_cfg(tiny_causal_lm, skipped, data=DataConfig(path=str(data)), plans=str(plans), val_fraction=0,
                   max_steps=1, max_target_tokens=12, too_long="skip"))
    report = json.loads((skipped / "train_summary.json").read_text())["data"]
    assert report["skipped_too_long"]["code"] >= 1 and report["truncated"] == {}

    with pytest.raises(InputError) as err:
        train(make_cfg(tiny_causal_lm, tmp_path / "strict", data=DataConfig(path=str(data)), plans=str(plans),
                       stop_on_bad_input=True))
    assert "p3" in str(err.value) and "solutions" in str(err.value)
    no_p3 = tmp_path / "no_p3.jsonl"
    no_p3.write_text("".join(line + "\n" for line in data.read_text().splitlines()[:2]))
    with pytest.raises(InputError) as err:
        train(make_cfg(tiny_causal_lm, tmp_path / "strict2", data=DataConfig(path=str(no_p3)), plans=str(plans),
                       stop_on_bad_input=True))
    assert f"{plans}:3" in str(err.value) and "ghost" in str(err.value)


def test_malformed_plan_record_names_line_and_field(tiny_causal_lm, tmp_path):
    plans = tmp_path / "plans.jsonl"
    plans.write_text('{"problem_id": "sample-stdin-001", "solution_index": 0, "plan": "1. x"}\n'
                     '{"problem_id": "sample-stdin-002", "solution_index": "zero", "plan": "1. y"}\n')
    with pytest.raises(InputError, match=r"plans.jsonl:2 .*solution_index"):
        train(make_cfg(tiny_causal_lm, tmp_path / "m", plans=str(plans)))


def test_alternation_and_proportional_schedules():
    sizes = {"code": 10, "plan": 4}
    alt = iter_micro_batches(sizes, ["code", "plan"], "alternate", 3, seed=1)
    first = [next(alt) for _ in range(8)]
    assert [t for t, _ in first] == ["code", "plan"] * 4  # code on even micro-steps, plan on odd
    assert all(len(ix) == 3 and max(ix) < sizes[t] for t, ix in first)
    again = iter_micro_batches(sizes, ["code", "plan"], "alternate", 3, seed=1)
    assert [next(again) for _ in range(8)] == first  # a pure function of the seed: resumable
    prop = iter_micro_batches(sizes, ["code", "plan"], "proportional", 2, seed=1)
    epoch = [next(prop)[0] for _ in range(7)]  # ceil(10/2) + ceil(4/2) micro-batches per epoch
    assert epoch.count("code") == 5 and epoch.count("plan") == 2


def test_each_task_loss_falls_on_the_sample(tiny_causal_lm, tmp_path):
    out = tmp_path / "learn"
    train(make_cfg(tiny_causal_lm, out, max_steps=36, lr=3e-3, micro_batch_size=8, val_fraction=0))
    log = read_log(out)
    for task in ("code", "plan"):
        values = [r["loss"][task] for r in log if task in r["loss"]]
        assert sum(values[-3:]) / 3 < 0.8 * sum(values[:3]) / 3, (task, values)


def test_cli_train_baseline_and_bad_plans(tiny_causal_lm, tmp_path):
    from click.testing import CliRunner

    from codeplan.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["train", "--data", "sample", "--plans", SAMPLE_PLANS, "--student", str(tiny_causal_lm),
                                 "--out", str(out), "--mode", "baseline", "--max-steps", "1", "--micro-batch-size", "2",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "train_summary.json").is_file() and (out / "config.json").is_file()
    result = runner.invoke(app, ["train", "--data", "sample", "--plans", str(tmp_path / "missing.jsonl"),
                                 "--student", str(tiny_causal_lm), "--out", str(tmp_path / "cli2"), "--max-steps", "1"])
    assert result.exit_code == 2 and "missing.jsonl" in result.output


def test_chat_template_prompts_and_target_only_labels(tiny_causal_lm, tmp_path):
    from transformers import AutoTokenizer

    from codeplan.errors import SetupError
    from codeplan.train.examples import IGNORE, DataReport, Example, encode_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    example = Example("plan", "p1", "[GEN_PLAN]\nQUESTION:\nAdd two numbers.\n", "1. Read.\n2. Add.")
    cfg = make_cfg(tiny_causal_lm, tmp_path / "x", chat_template=True)
    with pytest.raises(SetupError, match="chat template"):
        encode_examples([example], tokenizer, cfg, DataReport(), encoder_decoder=False, counter=__import__("collections").Counter())
    tokenizer.chat_template = ("{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    [enc] = encode_examples([example], tokenizer, cfg, DataReport(), encoder_decoder=False,
                            counter=__import__("collections").Counter())
    n_prompt = sum(1 for t in enc.labels if t == IGNORE)
    assert tokenizer.decode(enc.input_ids[:n_prompt]).startswith("<|user|>[GEN_PLAN]")
    assert tokenizer.decode(enc.input_ids[:n_prompt]).endswith("<|assistant|>")
    # the loss sees the target and EOS only
    assert enc.labels[n_prompt:] == enc.input_ids[n_prompt:]
    assert tokenizer.decode(enc.labels[n_prompt:]) == "1. Read.\n2. Add." + tokenizer.eos_token


def test_baseline_and_codeplan_train_on_the_same_code_examples_in_the_same_steps(tiny_causal_lm, tmp_path):
    """The comparison is fair: at the same steps both students see the same code examples; the
    plan task is added on top (and reported), as is the plan-conditioned variant's third task."""
    seen = {}
    for mode, extra in (("baseline", {}), ("codeplan", {}), ("variant", {"plan_conditioned_code": True})):
        out = tmp_path / mode
        train(make_cfg(tiny_causal_lm, out, mode="baseline" if mode == "baseline" else "codeplan", max_steps=3,
                       grad_accum=2, val_fraction=0, **extra))
        summary = json.loads((out / "train_summary.json").read_text())
        assert summary["steps"] == 3
        seen[mode] = summary["trained_on"]
    assert seen["baseline"]["code"] == seen["codeplan"]["code"] == seen["variant"]["code"]
    assert seen["baseline"]["code"]["examples"] == 3 * 2 * 4  # steps x grad_accum x micro_batch_size
    assert set(seen["baseline"]) == {"code"} and seen["codeplan"]["plan"]["examples"] == 24
    assert seen["variant"]["plan_code"]["examples"] == 24
