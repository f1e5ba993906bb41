"""`TrainConfig`: every setting of the training stage (saved as train_config.yaml with the model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codeplan.config import DataConfig, StageConfig

Task = Literal["code", "plan", "plan_code"]


class TrainConfig(StageConfig):
    """Multi-task fine-tuning of a student (CodePLAN) or code-only fine-tuning (the baseline)."""

    data: DataConfig
    plans: str
    student: str
    out: str
    mode: Literal["codeplan", "baseline"] = "codeplan"
    # Third task problem + plan -> code: the prompt plan sampling uses at inference, which the
    # release never trained on. On by default because it closes that train/inference gap.
    plan_conditioned_code: bool = True
    schedule: Literal["alternate", "proportional"] = "alternate"
    code_weight: float = Field(1.0, ge=0)
    plan_weight: float = Field(1.0, ge=0)
    plan_code_weight: float = Field(1.0, ge=0)
    plan_head: bool = False
    # Parameter-efficient fine-tuning.
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] | str = "all-linear"
    merge_lora: bool = True
    # Precision: float32, or mixed precision (fp32 master weights, bf16/fp16 compute).
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gradient_checkpointing: bool = False
    packing: bool = False
    max_source_tokens: int = Field(600, ge=8)
    max_target_tokens: int = Field(512, ge=8)
    pack_length: int | None = Field(None, ge=16)  # default: max_source_tokens + max_target_tokens
    too_long: Literal["truncate", "skip"] = "truncate"
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    lr_schedule: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    max_grad_norm: float | None = 1.0
    epochs: float = Field(10.0, gt=0)
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; overrides epochs
    micro_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(4, ge=1)
    save_every: int | None = Field(500, ge=1)  # optimizer steps between checkpoints
    keep_checkpoints: int | None = Field(2, ge=1)
    eval_every: int | None = Field(None, ge=1)  # validation every N steps (always at the end)
    resume: bool = False
    seed: int = 0
    val_fraction: float = Field(0.1, ge=0, lt=1)
    chat_template: bool = False
    strict: bool = False
    logging_dir: str | None = None  # TensorBoard folder; default OUT/logs
    log_every: int = Field(1, ge=1)
    progress: bool = True

    def tasks(self) -> list[Task]:
        """Active tasks in schedule order (alternation: code on even micro-steps, plan on odd)."""
        if self.mode == "baseline":
            return ["code"]
        return ["code", "plan", "plan_code"] if self.plan_conditioned_code else ["code", "plan"]

    def weight(self, task: Task) -> float:
        return {"code": self.code_weight, "plan": self.plan_weight, "plan_code": self.plan_code_weight}[task]

    def effective_pack_length(self) -> int:
        return self.pack_length or (self.max_source_tokens + self.max_target_tokens)
