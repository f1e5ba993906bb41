"""Micro-batch tensors: right padding, or packing several causal examples into one row.

Packing puts examples end to end and restarts `position_ids` at 0 at each example, with no 2D
attention mask. transformers (>= 4.53) reads those resets as sequence boundaries: sdpa/eager get
a block-diagonal causal mask, flash-attention its varlen kernel. No token attends across
examples, so the packed loss equals the padded one; only the padding compute is saved.
"""

from __future__ import annotations

import torch

from codeplan.train.examples import IGNORE, Encoded


def pad_batch(batch: list[Encoded], pad_id: int, *, encoder_decoder: bool) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, attention_mask, labels (pads ignored)."""
    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ex in enumerate(batch):
        ids[row, : len(ex.input_ids)] = torch.tensor(ex.input_ids)
        mask[row, : len(ex.input_ids)] = 1
    label_width = max(len(ex.labels) for ex in batch)
    labels = torch.full((len(batch), label_width), IGNORE, dtype=torch.long)
    for row, ex in enumerate(batch):
        labels[row, : len(ex.labels)] = torch.tensor(ex.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack_rows(lengths: list[int], pack_length: int) -> list[list[int]]:
    """Assign example indices to rows of at most pack_length tokens, in as few rows as fit and with
    balanced loads (longest first, each into the least-filled row with room), so that the padded
    width of the batch, max(row load), stays close to total / rows. An example longer than
    pack_length gets a row of its own."""
    rows: list[list[int]] = [[] for _ in range(max(1, -(-sum(lengths) // pack_length)))]
    loads = [0] * len(rows)
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fitting = [r for r in range(len(rows)) if loads[r] + lengths[index] <= pack_length or not rows[r]]
        if fitting:
            r = min(fitting, key=lambda r: loads[r])
        else:
            rows.append([])
            loads.append(0)
            r = len(rows) - 1
        rows[r].append(index)
        loads[r] += lengths[index]
    return [sorted(row) for row in rows if row]


def pack_batch(batch: list[Encoded], pad_id: int, pack_length: int) -> dict[str, torch.Tensor]:
    """Causal LMs only: input_ids, position_ids (reset per example), labels; no attention_mask."""
    rows = pack_rows([len(ex.input_ids) for ex in batch], pack_length)
    width = max(sum(len(batch[i].input_ids) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            ex = batch[i]
            n = len(ex.input_ids)
            ids[r, start:start + n] = torch.tensor(ex.input_ids)
            labels[r, start:start + n] = torch.tensor(ex.labels)
            positions[r, start:start + n] = torch.arange(n)
            start += n
        # Trailing padding forms its own segment (positions restart), so it is masked off too.
        positions[r, start:] = torch.arange(width - start)
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


def collate(batch: list[Encoded], pad_id: int, *, encoder_decoder: bool, packing: bool,
            pack_length: int) -> dict[str, torch.Tensor]:
    if packing and not encoder_decoder:
        return pack_batch(batch, pad_id, pack_length)
    return pad_batch(batch, pad_id, encoder_decoder=encoder_decoder)
