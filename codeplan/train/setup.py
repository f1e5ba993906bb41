"""Set-up of a training run: the accelerator, the student, the data, the optimizer and schedule.

`start_accelerator` comes first (it refuses unsupported combinations before anything is written);
`set_up` then builds the `Run` every later part reads: the training loop (loop.py), its logging
(progress.py) and what it saves (outputs.py).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codeplan.errors import InputError, SetupError
from codeplan.modeling import load_model, load_tokenizer
from codeplan.train import heads
from codeplan.train.config import Task, TrainConfig
from codeplan.train.examples import (
    DataReport,
    Encoded,
    all_problem_ids,
    build_examples,
    encode_examples,
    load_training_problems,
    read_plans,
    split_validation,
)
from codeplan.train.schedule import micro_batches_per_epoch


def resolve_precision(dtype: str) -> str:
    """Accelerate mixed-precision mode: fp32 master weights, bf16/fp16 compute (or plain fp32)."""
    if dtype == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}[dtype]


@dataclass
class Run:
    """Everything one training run holds once set up (the model and optimizer are accelerate-prepared)."""

    cfg: TrainConfig
    out: Path
    accelerator: Any
    precision: str  # accelerate's mixed-precision mode
    sharded: bool  # FSDP / DeepSpeed: the weights are gathered from every rank to save them
    model: torch.nn.Module
    tokenizer: Any
    encoder_decoder: bool
    packing: bool
    by_task: dict[Task, list[Encoded]]  # training examples
    val_enc: list[Encoded]  # held-out examples
    report: DataReport
    tasks: list[Task]  # the tasks that have examples, in the config's order
    n_params: int
    n_trainable: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    task_head: Any  # the switchable plan head, or None
    decoder_inputs: Any  # encoder-decoder: labels -> decoder input ids
    per_epoch: int  # micro-batches per epoch (all ranks together)
    total_steps: int  # optimizer steps

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def global_batch(self) -> int:
        return self.cfg.micro_batch_size * self.world

    @property
    def sizes(self) -> dict[Task, int]:
        return {task: len(self.by_task[task]) for task in self.tasks}


def start_accelerator(cfg: TrainConfig) -> tuple[Any, str]:
    """The accelerator for this run and its precision mode; seeds every generator."""
    # Heavy: imported when a run starts, not when the config is built.
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import set_seed

    precision = resolve_precision(cfg.dtype)
    # accelerate keeps process-wide singletons; a second run in the same process (the pipeline
    # trains both modes in-process) with another precision would be refused without this reset.
    # The distributed setup itself (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if cfg.plan_head else []
    accelerator = Accelerator(gradient_accumulation_steps=cfg.micro_batches_per_step(), mixed_precision=precision,
                              kwargs_handlers=handlers)
    if is_sharded(accelerator) and (cfg.plan_head or (cfg.lora and cfg.merge_lora)):
        raise SetupError("the plan head and LoRA merging are supported with single-GPU and DDP training; "
                         "under FSDP/DeepSpeed train without them (or with merge_lora: false)")
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and accelerator.num_processes == 1:
        # Each process would train alone, all writing the same OUT: `accelerate launch --multi_gpu`
        # on a machine without GPUs does that unless told to use the CPU (and `--cpu` starts one).
        raise SetupError(f"launched as {launched} processes (WORLD_SIZE) but this one trains alone: without GPUs, "
                         "set ACCELERATE_USE_CPU=1 for `accelerate launch --multi_gpu --num_processes N` (gloo); "
                         "see docs/train.md")
    set_seed(cfg.seed)
    return accelerator, precision


def is_sharded(accelerator: Any) -> bool:
    """FSDP or DeepSpeed: no rank holds the whole model."""
    from accelerate.utils import DistributedType  # heavy, as above

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def set_up(cfg: TrainConfig, accelerator: Any, precision: str) -> Run:
    """Load the student and the data, then build the optimizer and the learning-rate schedule."""
    from transformers import get_scheduler  # heavy, as above

    model, tokenizer = _load_student(cfg, accelerator.device)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    packing = cfg.packing and not encoder_decoder
    if cfg.packing and encoder_decoder and accelerator.is_main_process:
        print("note: packing applies to causal students only; this encoder-decoder trains unpacked")
    by_task, val_enc, report = _prepare_data(cfg, tokenizer, encoder_decoder)
    tasks = [t for t in cfg.tasks() if t in by_task]

    if cfg.lora:
        model = _wrap_lora(cfg, model, encoder_decoder)
    if cfg.gradient_checkpointing:
        heads.base_lm(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.plan_head and "plan" in tasks:
        heads.install_plan_head(model)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = _optimizer(cfg, model)

    per_epoch = micro_batches_per_epoch({t: len(by_task[t]) for t in tasks}, cfg.schedule,
                                        cfg.micro_batch_size * accelerator.num_processes)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / cfg.micro_batches_per_step()))
    scheduler = get_scheduler(cfg.lr_schedule, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=total_steps)
    if accelerator.state.deepspeed_plugin is not None:  # no prepared DataLoader tells DeepSpeed the batch size
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    decoder_inputs = heads.base_lm(accelerator.unwrap_model(model)).prepare_decoder_input_ids_from_labels \
        if encoder_decoder else None
    return Run(cfg=cfg, out=Path(cfg.out), accelerator=accelerator, precision=precision,
               sharded=is_sharded(accelerator), model=model, tokenizer=tokenizer, encoder_decoder=encoder_decoder,
               packing=packing, by_task=by_task, val_enc=val_enc, report=report, tasks=tasks, n_params=n_params,
               n_trainable=n_trainable, optimizer=optimizer, scheduler=scheduler,
               task_head=heads.find_task_head(model), decoder_inputs=decoder_inputs, per_epoch=per_epoch,
               total_steps=total_steps)


def _prepare_data(cfg: TrainConfig, tokenizer: Any, encoder_decoder: bool):
    report = DataReport()
    problems = load_training_problems(cfg, report)
    plans = read_plans(cfg.plans) if cfg.mode == "codeplan" else []
    report.plans_total = len(plans)
    all_ids = all_problem_ids(cfg, problems) if plans else None
    examples = build_examples(problems, plans, cfg, report, all_ids=all_ids)
    train_problems, val_problems = split_validation(problems, cfg.val_fraction, cfg.seed)
    report.train_problems, report.val_problems = len(train_problems), len(val_problems)
    val_ids = {p.id for p in val_problems}
    train_ex = [e for e in examples if e.problem_id not in val_ids]
    val_ex = [e for e in examples if e.problem_id in val_ids]
    train_enc = encode_examples(train_ex, tokenizer, cfg, report, encoder_decoder=encoder_decoder, counter=report.examples)
    val_enc = encode_examples(val_ex, tokenizer, cfg, report, encoder_decoder=encoder_decoder, counter=report.val_examples)
    by_task: dict[Task, list[Encoded]] = defaultdict(list)
    for enc in train_enc:
        by_task[enc.task].append(enc)
    for task in cfg.tasks():
        if not by_task.get(task):
            raise InputError(f"no usable training examples for the {task} task (see the counts: "
                             f"{json.dumps(report.as_dict(), default=str)})", path=cfg.plans if task != "code" else cfg.data.path)
    return dict(by_task), val_enc, report


def _load_student(cfg: TrainConfig, device: torch.device):
    tokenizer = load_tokenizer(cfg.student)
    # Master weights stay fp32; accelerate's autocast does the bf16/fp16 compute.
    model = load_model(cfg.student, dtype="float32", device=str(device))
    model.config.use_cache = False
    return model, tokenizer


def _wrap_lora(cfg: TrainConfig, model: torch.nn.Module, encoder_decoder: bool) -> torch.nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model  # heavy; LoRA runs only

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules,
                      task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM)
    return get_peft_model(model, lora)


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            # Weight decay on matrices only, never on biases and norm scales (the usual practice).
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)
