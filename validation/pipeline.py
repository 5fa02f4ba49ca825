"""The reference model as torch.distributed.pipelining runs it, one stage a rank: what each
rank keeps over a whole steady-state step of a pipeline schedule.

`stage_module(model, stage, stages)` keeps of a reference Transformer
(validation/reference_model.py) what one stage of `stages` runs, its blocks split evenly:
the first stage embeds the tokens, the last applies the final norm and the head and
returns the logits; the schedule's loss_fn (cross-entropy, as torchtitan's) makes each
micro-batch's loss on the last stage. Untied heads only (a tied head is the first
stage's embedding). validation/distributed.py (--pp) runs it rank by rank. Needs torch
(the validation extra), never calc.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from validation.reference_model import Transformer

SCHEDULES = {"1f1b": Schedule1F1B, "gpipe": ScheduleGPipe}


class StageModule(nn.Module):
    """One pipeline stage of a reference Transformer: its blocks, and the embedding (first
    stage) or the final norm and head (last stage)."""

    def __init__(self, model: Transformer, stage: int, stages: int, attention: str, checkpoint: str):
        super().__init__()
        layers = len(model.blocks)
        if layers % stages or model.cfg["tied"]:
            raise ValueError("stages must split the blocks evenly, and the head must be untied")
        per_stage = layers // stages
        self.first, self.last = stage == 0, stage == stages - 1
        self.embed = model.embed if self.first else None
        self.pos_embed = model.pos_embed if self.first else None
        self.blocks = nn.ModuleList(model.blocks[stage * per_stage:(stage + 1) * per_stage])
        self.final_norm = model.final_norm if self.last else None
        self.head = model.head if self.last else None
        self.register_buffer("cos", model.cos, persistent=False)
        self.register_buffer("sin", model.sin, persistent=False)
        self.attention, self.checkpoint = attention, checkpoint

    def forward(self, x):
        if self.first:
            x = Transformer.embed_tokens(self, x)
        seq = x.shape[1]
        causal_mask = None
        if self.attention == "explicit":
            causal_mask = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)
        cos, sin = self.cos[:seq], self.sin[:seq]
        for block in self.blocks:
            if self.checkpoint == "block":
                x = torch_checkpoint(block, x, self.attention, causal_mask, cos, sin, use_reentrant=False)
            else:
                x = block(x, self.attention, causal_mask, cos, sin)
        if self.last:
            x = Transformer.project(self, self.final_norm(x))
        return x


def loss_fn(logits, targets):
    """A micro-batch's mean cross-entropy, as the whole model's loss makes it."""
    return Transformer.loss(logits, targets)


def schedule(module: StageModule, stage: int, stages: int, microbatches: int, kind: str, group=None):
    """The schedule that runs `module` as stage `stage` of `stages` on this rank."""
    pipeline_stage = PipelineStage(module, stage, stages, torch.device("cpu"), group=group)
    return SCHEDULES[kind](pipeline_stage, microbatches, loss_fn=loss_fn)
