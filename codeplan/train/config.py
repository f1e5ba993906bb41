"""`TrainConfig`: every setting of the training stage (saved as train_config.yaml with the model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codeplan.config import DataConfig, StageConfig

Task = Literal["code", "plan", "plan_code"]


class TrainConfig(StageConfig):
    """Multi-task fine-tuning of a student (CodePLAN) or code-only fine-tuning (the baseline)."""

    renamed = {"strict": "stop_on_bad_input", "plan_code": "plan_conditioned_code"}

    data: DataConfig
    plans: str = Field(description="plans.jsonl from `codeplan distill`.")
    student: str = Field(description="Hub id, local folder, .gguf file or packaged name.")
    out: str = Field(description="Folder for checkpoints and the final model.")
    mode: Literal["codeplan", "baseline"] = Field("codeplan", description="codeplan (code + plan tasks) or baseline (code only).")
    # Third task problem + plan -> code: the prompt plan sampling uses at inference, which the
    # release never trained on. A named variant, off by default: the paper's method has two tasks,
    # and this one shows each reference program a second time per epoch.
    plan_conditioned_code: bool = Field(False, description="Third task (a variant): problem + plan -> code.")
    schedule: Literal["alternate", "proportional"] = Field("alternate", description="alternate (code and plan micro-batches in turn) or proportional.")
    code_weight: float = Field(1.0, ge=0, description="Loss weight of the code task.")
    plan_weight: float = Field(1.0, ge=0, description="Loss weight of the plan task.")
    plan_code_weight: float = Field(1.0, ge=0, description="Loss weight of the plan-conditioned code task.")
    plan_head: bool = Field(False, description="A separate output head for plans, initialised from the LM head.",
                            json_schema_extra={"flag": "--plan-head/--shared-head"})
    # Parameter-efficient fine-tuning.
    lora: bool = Field(False, description="LoRA adapters instead of full fine-tuning.",
                       json_schema_extra={"flag": "--lora/--full"})
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_target_modules: list[str] | str = Field("all-linear", description="Modules that get adapters (comma-separated names, or all-linear).")
    merge_lora: bool = Field(True, description="Merge the adapters into the saved model.")
    # Precision: float32, or mixed precision (fp32 master weights, bf16/fp16 compute).
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Precision: float32, or mixed precision (fp32 master weights, bf16/fp16 compute); auto picks per device.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass (less memory).")
    packing: bool = Field(False, description="Pack examples into sequences of pack_length (causal students).")
    max_source_tokens: int = Field(600, ge=8, description="Prompt token limit.")
    max_target_tokens: int = Field(512, ge=8, description="Target token limit.")
    pack_length: int | None = Field(None, ge=16, description="Length of a packed sequence (default: max_source_tokens + max_target_tokens).")
    too_long: Literal["truncate", "skip"] = Field("truncate", description="What to do with an example over the limits: truncate or skip.")
    lr: float = Field(2e-5, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay.")
    lr_schedule: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field("constant", description="Learning-rate schedule.")
    warmup_steps: int = Field(0, ge=0, description="Warm-up optimizer steps.")
    max_grad_norm: float | None = Field(1.0, description="Gradient clipping norm (none: no clipping).")
    epochs: float = Field(10.0, gt=0, description="Passes over the training examples.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    micro_batch_size: int = Field(8, ge=1, description="Examples per micro-batch (per device).")
    grad_accum: int = Field(4, ge=1, description=(
        "Micro-batches of each task per optimizer step (alternate schedule); of any task (proportional)."))
    save_every: int | None = Field(500, ge=1, description="Optimizer steps between checkpoints.")
    keep_checkpoints: int | None = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    eval_every: int | None = Field(None, ge=1, description="Validation every N steps (always at the end).")
    resume: bool = Field(False, description="Continue from the last checkpoint in OUT.")
    seed: int = Field(0, description="Random seed.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of problems held out for validation.")
    chat_template: bool = Field(False, description="Wrap prompts in the model's chat template.")
    stop_on_bad_input: bool = Field(False, description="Stop at the first bad input instead of counting and skipping it.")
    logging_dir: str | None = Field(None, description="TensorBoard folder; default OUT/logs.")
    log_every: int = Field(1, ge=1, description="Optimizer steps between log lines.")
    progress: bool = Field(True, description="Show the progress bar.")

    def micro_batches_per_step(self) -> int:
        """With `alternate`, an optimizer step takes grad_accum micro-batches of *each* task: the
        CodePLAN student then runs the baseline's optimizer steps on the baseline's code examples,
        the plan task being the only difference (it adds compute, which the summary reports)."""
        return self.grad_accum * (len(self.tasks()) if self.schedule == "alternate" else 1)

    def tasks(self) -> list[Task]:
        """Active tasks in schedule order (alternation: code on even micro-steps, plan on odd)."""
        if self.mode == "baseline":
            return ["code"]
        return ["code", "plan", "plan_code"] if self.plan_conditioned_code else ["code", "plan"]

    def weight(self, task: Task) -> float:
        return {"code": self.code_weight, "plan": self.plan_weight, "plan_code": self.plan_code_weight}[task]

    def effective_pack_length(self) -> int:
        return self.pack_length or (self.max_source_tokens + self.max_target_tokens)
