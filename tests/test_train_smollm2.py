"""The real 135M student: two CodePLAN steps on the bundled sample, saved, reloaded by plain
transformers, and it still writes text for a plan prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeplan.config import DataConfig
from codeplan.train import TrainConfig, train

SAMPLE_PLANS = str(Path(__file__).resolve().parents[1] / "codeplan" / "data" / "sample" / "plans.jsonl")


@pytest.mark.slow
def test_smollm2_codeplan_two_steps_reload_and_generate(smollm2_gguf, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codeplan.data import load_problems
    from codeplan.prompts import plan_prompt

    out = tmp_path / "smol"
    cfg = TrainConfig(data=DataConfig(path="sample", split="train"), plans=SAMPLE_PLANS, student=smollm2_gguf,
                      out=str(out), max_steps=2, micro_batch_size=1, grad_accum=1, lr=1e-4, max_source_tokens=128,
                      max_target_tokens=64, packing=True, save_every=None, val_fraction=0, progress=False)
    train(cfg)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2 and set(summary["final_train_loss"]) == {"code", "plan"}
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    problem = load_problems(DataConfig(path="sample", split="test"))[0]
    ids = tokenizer(plan_prompt(problem), return_tensors="pt").input_ids
    with torch.no_grad():
        new = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]
    assert len(new) > 0 and tokenizer.decode(new, skip_special_tokens=True).strip()
