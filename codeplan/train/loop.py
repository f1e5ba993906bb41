"""The training loop: one `accelerate` loop for every student, task schedule and scale.

Why a loop of our own rather than the HF Trainer: per-micro-batch task alternation, the switchable
plan head, packing with per-example position resets and per-task loss logging are each a line or
two here and a fight with Trainer's callbacks there. `accelerate` still gives DDP / FSDP /
DeepSpeed, mixed precision, gradient accumulation and full-state checkpoints, so the same file runs
under `accelerate launch` unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from codeplan.errors import InputError, SetupError
from codeplan.train import heads
from codeplan.train.collate import collate
from codeplan.train.config import Task, TrainConfig
from codeplan.train.examples import (
    IGNORE,
    DataReport,
    Encoded,
    build_examples,
    encode_examples,
    load_training_problems,
    read_plans,
    all_problem_ids,
    split_validation,
)
from codeplan.train.flops import flops_per_token, peak_flops
from codeplan.train.schedule import iter_micro_batches, micro_batches_per_epoch

SUMMARY = "train_summary.json"
CONFIG = "train_config.yaml"
LOG = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
STATE = "trainer_state.json"


# ---- small helpers ------------------------------------------------------------------------------

def resolve_precision(dtype: str) -> str:
    """Accelerate mixed-precision mode: fp32 master weights, bf16/fp16 compute (or plain fp32)."""
    if dtype == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}[dtype]


def save_dtype(precision: str) -> torch.dtype:
    return {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    """Settings that define a run (everything but how it is launched)."""
    values = cfg.model_dump(mode="json")
    for key in ("resume", "progress"):
        values.pop(key, None)
    return values


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints (those holding trainer_state.json), oldest first."""
    found = []
    for path in (out / CHECKPOINTS).glob("step-*"):
        if (path / STATE).is_file() and path.name[5:].isdigit():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, *, causal: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over target tokens and their count (prompt and padding are IGNORE)."""
    if causal:
        # Shift the labels, not the logits: slicing the (batch, length, vocab) logits would copy them.
        labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((labels != IGNORE).sum())


def forward_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor], *, causal: bool,
                 decoder_inputs: Any = None) -> tuple[torch.Tensor, int]:
    """Mean target-token loss of one micro-batch (and its target-token count)."""
    labels = inputs["labels"]
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    if not causal:
        kwargs["decoder_input_ids"] = decoder_inputs(labels)
    logits = model(**kwargs, use_cache=False).logits
    total, count = token_loss(logits, labels, causal=causal)
    return total / max(count, 1), count


# ---- the stage ----------------------------------------------------------------------------------

class _Run:
    """Everything one training run holds: data, model, optimizer, counters."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)


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
    from codeplan.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.student)
    # Master weights stay fp32; accelerate's autocast does the bf16/fp16 compute.
    model = load_model(cfg.student, dtype="float32", device=str(device))
    model.config.use_cache = False
    return model, tokenizer


def _wrap_lora(cfg: TrainConfig, model: torch.nn.Module, encoder_decoder: bool) -> torch.nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

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


def _check_existing(cfg: TrainConfig, out: Path) -> bool:
    """True when OUT already holds this finished run. Refuses to mix different runs in one folder."""
    saved = out / CONFIG
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        previous.pop("resume", None)
        previous.pop("progress", None)
        current = _settings(cfg)
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if changed and ((out / SUMMARY).is_file() or checkpoints(out)):
            raise InputError(f"this folder holds a run with other settings ({', '.join(changed)}); "
                             "choose another --out or delete it", path=saved, field=changed[0])
    if (out / SUMMARY).is_file():
        return True
    if checkpoints(out) and not cfg.resume:
        raise InputError("holds checkpoints of an unfinished run: pass --resume to continue it, or choose an "
                         "empty folder", path=out / CHECKPOINTS)
    return False


def train(cfg: TrainConfig) -> Path:
    """Fine-tune `cfg.student` and save it in Hugging Face format in `cfg.out`; returns `cfg.out`.

    `train_summary.json` is written last, atomically: its presence means the run is complete.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    out = Path(cfg.out)
    if _check_existing(cfg, out):
        print(f"{out}: already trained ({SUMMARY} present); nothing to do")
        return out

    precision = resolve_precision(cfg.dtype)
    # accelerate keeps process-wide singletons; a second run in the same process (the pipeline
    # trains both modes in-process) with another precision would be refused without this reset.
    # The distributed setup itself (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if cfg.plan_head else []
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=precision,
                              kwargs_handlers=handlers)
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if sharded and (cfg.plan_head or (cfg.lora and cfg.merge_lora)):
        raise SetupError("the plan head and LoRA merging are supported with single-GPU and DDP training; "
                         "under FSDP/DeepSpeed train without them (or with merge_lora: false)")
    set_seed(cfg.seed)
    main = accelerator.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(out / CONFIG)

    model, tokenizer = _load_student(cfg, accelerator.device)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    packing = cfg.packing and not encoder_decoder
    if cfg.packing and encoder_decoder and main:
        print("note: packing applies to causal students only; this encoder-decoder trains unpacked")
    by_task, val_enc, report = _prepare_data(cfg, tokenizer, encoder_decoder)
    tasks = [t for t in cfg.tasks() if t in by_task]
    sizes = {t: len(by_task[t]) for t in tasks}

    if cfg.lora:
        model = _wrap_lora(cfg, model, encoder_decoder)
    if cfg.gradient_checkpointing:
        heads.base_lm(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.plan_head and "plan" in tasks:
        heads.install_plan_head(model)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = _optimizer(cfg, model)

    world = accelerator.num_processes
    global_batch = cfg.micro_batch_size * world
    per_epoch = micro_batches_per_epoch(sizes, cfg.schedule, global_batch)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))
    scheduler = get_scheduler(cfg.lr_schedule, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=total_steps)
    if accelerator.state.deepspeed_plugin is not None:  # no prepared DataLoader tells DeepSpeed the batch size
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    task_head = heads.find_task_head(model)
    decoder_inputs = heads.base_lm(accelerator.unwrap_model(model)).prepare_decoder_input_ids_from_labels \
        if encoder_decoder else None

    step = 0
    if cfg.resume and checkpoints(out):
        step, path = checkpoints(out)[-1]
        accelerator.load_state(str(path))
        accelerator.step = 0  # checkpoints are taken at optimizer-step boundaries
        if main:
            print(f"resuming from {path} (step {step} of {total_steps})")
    _truncate_log(out / LOG, step, main)

    schedule = iter_micro_batches(sizes, tasks, cfg.schedule, global_batch, cfg.seed)
    for _ in range(step * cfg.grad_accum):  # replay the data order up to the resume point
        next(schedule)

    writer = _tensorboard(cfg, out) if main else None
    peak = peak_flops(accelerator.device) if precision != "no" else None
    rank = accelerator.process_index
    pad_id = tokenizer.pad_token_id
    pack_length = cfg.effective_pack_length()
    bar = tqdm(total=total_steps, initial=step, desc="train", disable=not (main and cfg.progress), dynamic_ncols=True)
    last_losses: dict[str, float] = {}
    started = time.perf_counter()
    tokens_done = 0
    last_saved = step
    val_losses: dict[str, float] = {}
    model.train()
    try:
        while step < total_steps:
            step_started = time.perf_counter()
            sums = torch.zeros(len(tasks), 2, device=accelerator.device)  # per task: loss*tokens, tokens
            step_tokens = 0
            seq_lens: list[int] = []
            for _ in range(cfg.grad_accum):
                task, indices = next(schedule)
                mine = [by_task[task][i] for i in indices[rank * cfg.micro_batch_size:(rank + 1) * cfg.micro_batch_size]]
                batch = {k: v.to(accelerator.device) for k, v in collate(
                    mine, pad_id, encoder_decoder=encoder_decoder, packing=packing, pack_length=pack_length).items()}
                step_tokens += sum(len(e.input_ids) + (len(e.labels) if encoder_decoder else 0) for e in mine)
                seq_lens += [len(e.input_ids) for e in mine]
                if task_head is not None:
                    task_head.use_plan = task == "plan"
                with accelerator.accumulate(model):
                    loss, count = forward_loss(model, batch, causal=not encoder_decoder, decoder_inputs=decoder_inputs)
                    accelerator.backward(loss * cfg.weight(task))
                    if accelerator.sync_gradients and cfg.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                t = tasks.index(task)
                sums[t, 0] += loss.detach().float() * count
                sums[t, 1] += count
            scheduler.step()
            step += 1
            sums = accelerator.reduce(sums, reduction="sum")
            step_tokens = int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), reduction="sum"))
            tokens_done += step_tokens
            elapsed = time.perf_counter() - step_started
            for t, task in enumerate(tasks):
                if sums[t, 1] > 0:
                    last_losses[task] = float(sums[t, 0] / sums[t, 1])
            tok_s = step_tokens / max(elapsed, 1e-9)
            record: dict[str, Any] = {"step": step, "lr": scheduler.get_last_lr()[0], "tokens": step_tokens,
                                      "tokens_per_s": round(tok_s, 1),
                                      "loss": {task: round(float(sums[t, 0] / sums[t, 1]), 6)
                                               for t, task in enumerate(tasks) if sums[t, 1] > 0}}
            if peak:
                seq = sum(seq_lens) / max(len(seq_lens), 1)
                record["mfu"] = round(tok_s * flops_per_token(heads.base_lm(accelerator.unwrap_model(model)).config,
                                                              n_params, seq) / (peak * world), 4)
            if main:
                _append_log(out / LOG, record)
                if writer is not None and step % cfg.log_every == 0:
                    for task, value in record["loss"].items():
                        writer.add_scalar(f"train/loss_{task}", value, step)
                    writer.add_scalar("train/lr", record["lr"], step)
                    writer.add_scalar("train/tokens_per_s", tok_s, step)
                    if "mfu" in record:
                        writer.add_scalar("train/mfu", record["mfu"], step)
                postfix = {task: f"{v:.3f}" for task, v in last_losses.items()}
                postfix["tok/s"] = f"{tok_s:.0f}"
                if "mfu" in record:
                    postfix["mfu"] = f"{record['mfu']:.1%}"
                bar.set_postfix(postfix)
            bar.update(1)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps and val_enc:
                val_losses = _validate(model, val_enc, cfg, accelerator, task_head, encoder_decoder, packing,
                                       pad_id, decoder_inputs)
                _log_val(writer, val_losses, step)
            if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
                _save_checkpoint(accelerator, out, step, cfg)
                last_saved = step
    except KeyboardInterrupt:
        # Ctrl-C: keep the last finished optimizer step, so `--resume` loses nothing done.
        optimizer.zero_grad(set_to_none=True)
        if step > last_saved:
            _save_checkpoint(accelerator, out, step, cfg)
        bar.close()
        raise
    bar.close()
    train_seconds = time.perf_counter() - started

    if val_enc:
        val_losses = _validate(model, val_enc, cfg, accelerator, task_head, encoder_decoder, packing, pad_id,
                               decoder_inputs)
        _log_val(writer, val_losses, step)
    if writer is not None:
        writer.close()

    accelerator.wait_for_everyone()
    extras: dict[str, Any] = {}
    if main:
        extras = _save_final(accelerator.unwrap_model(model), tokenizer, cfg, out, precision, sharded=sharded,
                             state_dict=accelerator.get_state_dict(model) if sharded else None)
    elif sharded:
        accelerator.get_state_dict(model)  # every rank takes part in gathering the full weights
    accelerator.wait_for_everyone()
    if main:
        summary = {
            "student": cfg.student,
            "mode": cfg.mode,
            "tasks": tasks,
            "encoder_decoder": encoder_decoder,
            "prompt_format": {"chat_template": cfg.chat_template, "plan_conditioned_code": "plan_code" in tasks},
            "steps": step,
            "micro_batches_per_epoch": per_epoch,
            "epochs_done": round(step * cfg.grad_accum / per_epoch, 3),
            "world_size": world,
            "precision": precision,
            "packing": packing,
            "lora": cfg.lora,
            "parameters": n_params,
            "trainable_parameters": n_trainable,
            "final_train_loss": last_losses,
            "val_loss": val_losses,
            "train_seconds_this_session": round(train_seconds, 2),
            "tokens_per_s_this_session": round(tokens_done / max(train_seconds, 1e-9), 1),
            "data": report.as_dict(),
            **extras,
        }
        _write_json_atomic(out / SUMMARY, summary)
        _print_report(summary)
    accelerator.wait_for_everyone()
    return out


# ---- pieces of the loop -------------------------------------------------------------------------

@torch.no_grad()
def _validate(model, val_enc: list[Encoded], cfg: TrainConfig, accelerator, task_head, encoder_decoder: bool,
              packing: bool, pad_id: int, decoder_inputs) -> dict[str, float]:
    """Mean target-token loss per task on the held-out problems (sharded over ranks)."""
    model.eval()
    tasks = sorted({e.task for e in val_enc})
    sums = torch.zeros(len(tasks), 2, device=accelerator.device)
    mine = val_enc[accelerator.process_index::accelerator.num_processes]
    for t, task in enumerate(tasks):
        items = [e for e in mine if e.task == task]
        if task_head is not None:
            task_head.use_plan = task == "plan"
        for start in range(0, len(items), cfg.micro_batch_size):
            batch = {k: v.to(accelerator.device) for k, v in collate(
                items[start:start + cfg.micro_batch_size], pad_id, encoder_decoder=encoder_decoder, packing=packing,
                pack_length=cfg.effective_pack_length()).items()}
            loss, count = forward_loss(model, batch, causal=not encoder_decoder, decoder_inputs=decoder_inputs)
            sums[t, 0] += loss.float() * count
            sums[t, 1] += count
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    return {task: round(float(sums[t, 0] / sums[t, 1]), 6) for t, task in enumerate(tasks) if sums[t, 1] > 0}


def _log_val(writer, losses: dict[str, float], step: int) -> None:
    if writer is not None:
        for task, value in losses.items():
            writer.add_scalar(f"val/loss_{task}", value, step)


def _tensorboard(cfg: TrainConfig, out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a missing logger must not stop training
        return None
    return SummaryWriter(log_dir=cfg.logging_dir or str(out / "logs"))


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _truncate_log(path: Path, step: int, main: bool) -> None:
    """Drop log records past the step a run restarts from (they will be redone)."""
    if not main or not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a killed run
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _save_checkpoint(accelerator, out: Path, step: int, cfg: TrainConfig) -> None:
    """Full state (weights, optimizer, scheduler, RNG) in checkpoints/step-N; trainer_state.json
    goes in last, so a half-written checkpoint is never resumed from."""
    target = out / CHECKPOINTS / f"step-{step}"
    if accelerator.is_main_process and target.exists():
        shutil.rmtree(target)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        _write_json_atomic(target / STATE, {"step": step, "micro_step": step * cfg.grad_accum})
        if cfg.keep_checkpoints:
            for _, old in checkpoints(out)[:-cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _save_final(model, tokenizer, cfg: TrainConfig, out: Path, precision: str, *, sharded: bool,
                state_dict: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """The final model in plain Hugging Face format directly in OUT (LoRA merged when asked; the
    plan head, if any, beside it and as plan_model/)."""
    dtype = save_dtype(precision)
    extras: dict[str, Any] = {"saved_dtype": str(dtype).removeprefix("torch.")}
    if cfg.lora and cfg.merge_lora:
        model = model.merge_and_unload()
    head = heads.remove_plan_head(model)
    model.config.use_cache = True
    if sharded:
        model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    else:
        model.to(dtype)
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if head is not None:
        heads.save_plan_head(head, out)
        extras["plan_head"] = heads.PLAN_HEAD_FILE
        if not (cfg.lora and not cfg.merge_lora):  # an unmerged adapter has no full model to copy
            heads.export_plan_model(model, head, out, tokenizer, dtype)
            extras["plan_model"] = heads.PLAN_MODEL_DIR
    if cfg.lora and not cfg.merge_lora:
        extras["lora_adapter"] = True  # OUT holds the adapter; transformers+peft load it over the base
    return extras


def _print_report(summary: dict[str, Any]) -> None:
    data = summary["data"]
    left_out = {k: v for k, v in data.items() if k.startswith(("plans_unknown", "plans_empty", "plans_bad",
                                                                 "problems_without", "excluded", "plans_not"))
                and v}
    print(f"trained {summary['steps']} steps ({summary['epochs_done']} epochs); examples {data['examples']}; "
          f"val {data['val_examples']}")
    if data["truncated"] or data["skipped_too_long"]:
        print(f"over the length limits: truncated {data['truncated']}, skipped {data['skipped_too_long']}")
    if left_out:
        print(f"left out: {left_out}")
    print(f"final train loss {summary['final_train_loss']}; val loss {summary['val_loss']}")
