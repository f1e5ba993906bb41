"""The optional separate plan head (the release's design): a second output layer, initialised as a
copy of the LM head, used for the plan task only; the code tasks keep the original head.

During training the model's output layer is replaced by a `TaskHead` holding both, switched by a
flag, so each step runs exactly one head (no wasted vocabulary projection) and the model's own
forward (masks, T5's output scaling, loss-free logits) is untouched. For saving, the original head
goes back, so the main model is a plain Hugging Face model; the plan head is saved beside it and
exported as a second complete model, `plan_model/`, that any loader (transformers, vLLM) can use
for plan generation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

PLAN_HEAD_FILE = "plan_head.safetensors"
PLAN_MODEL_DIR = "plan_model"


class TaskHead(nn.Module):
    """Two output layers; `use_plan` picks the plan head for the current micro-batch."""

    def __init__(self, lm_head: nn.Module) -> None:
        super().__init__()
        self.lm = lm_head
        self.plan = nn.Linear(lm_head.weight.shape[1], lm_head.weight.shape[0],
                              bias=getattr(lm_head, "bias", None) is not None)
        with torch.no_grad():
            self.plan.weight.copy_(lm_head.weight)  # a copy, never tied: the heads train apart
            if self.plan.bias is not None:
                self.plan.bias.copy_(lm_head.bias)
        self.plan.to(lm_head.weight.device, lm_head.weight.dtype)
        self.use_plan = False

    @property
    def weight(self) -> torch.Tensor:  # code that inspects the output layer sees the LM head
        return self.lm.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.plan(hidden) if self.use_plan else self.lm(hidden)


def base_lm(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def install_plan_head(model: nn.Module) -> TaskHead:
    lm = base_lm(model)
    head = TaskHead(lm.get_output_embeddings())
    lm.set_output_embeddings(head)
    return head


def find_task_head(model: nn.Module) -> TaskHead | None:
    for module in model.modules():
        if isinstance(module, TaskHead):
            return module
    return None


def remove_plan_head(model: nn.Module) -> TaskHead | None:
    """Put the original LM head back (before saving); returns the TaskHead that was there."""
    lm = base_lm(model)
    head = lm.get_output_embeddings()
    if isinstance(head, TaskHead):
        lm.set_output_embeddings(head.lm)
        return head
    return None


def save_plan_head(head: TaskHead, folder: Path) -> None:
    from safetensors.torch import save_file

    tensors = {"weight": head.plan.weight.detach().contiguous().cpu()}
    if head.plan.bias is not None:
        tensors["bias"] = head.plan.bias.detach().contiguous().cpu()
    save_file(tensors, str(folder / PLAN_HEAD_FILE))


def export_plan_model(model: nn.Module, head: TaskHead, folder: Path, tokenizer: Any, dtype: torch.dtype) -> Path:
    """Save a full copy of the model whose output layer is the plan head (untied from the input
    embeddings), so plan generation needs nothing but `from_pretrained(folder/plan_model)`."""
    target = folder / PLAN_MODEL_DIR
    plan_lm = copy.deepcopy(model)
    new_head = copy.deepcopy(head.plan)
    plan_lm.config.tie_word_embeddings = False
    text_config = plan_lm.config.get_text_config() if hasattr(plan_lm.config, "get_text_config") else None
    if text_config is not None and text_config is not plan_lm.config:
        text_config.tie_word_embeddings = False
    plan_lm.set_output_embeddings(new_head)
    plan_lm.to(dtype)
    plan_lm.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / "codeplan_plan_model.json").write_text(json.dumps(
        {"role": "plan", "note": "the main model with its output layer replaced by the trained plan head"}) + "\n")
    return target
