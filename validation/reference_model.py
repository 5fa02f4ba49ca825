"""The plain PyTorch transformer whose saved tensors calc's `autograd` accounting predicts.

Written the way a CS336 student writes it: every operation spelled out, nothing fused
except where the option says so (`attention="flash"` calls scaled_dot_product_attention).
The shape is a plain dict with calc's field names, so this file does not import calc.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

EPS = 1e-5


class Norm(nn.Module):
    """RMSNorm as `x * rsqrt(mean(x²) + eps) * g`, or LayerNorm through F.layer_norm."""

    def __init__(self, d_model: int, kind: str, bias: bool):
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if (kind == "layernorm" and bias) else None

    def forward(self, x):
        if self.kind == "rmsnorm":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, EPS)


class Linear(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def rope_tables(context: int, d_head: int):
    """cos and sin of shape [context, d_head/2], for RoPE on interleaved pairs."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head))
    angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x, cos, sin):
    """Rotate the pairs (x[2i], x[2i+1]) of the last axis of x [B, h, s, d_head]."""
    pairs = x.unflatten(-1, (-1, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d, h, h_kv = cfg["d_model"], cfg["heads"], cfg["kv_heads"]
        self.h, self.h_kv, self.d_head = h, h_kv, d // h
        bias = cfg["bias"]
        self.q_proj = Linear(d, h * self.d_head, bias)
        self.k_proj = Linear(d, h_kv * self.d_head, bias)
        self.v_proj = Linear(d, h_kv * self.d_head, bias)
        self.o_proj = Linear(h * self.d_head, d, bias)
        self.rope = cfg["positions"] == "rope"

    def split_heads(self, t, heads):
        batch, seq, _ = t.shape
        return t.view(batch, seq, heads, self.d_head).transpose(1, 2)

    def repeat_kv(self, t):
        """Grouped-query attention: repeat each key/value head h/h_kv times, as a copy.

        `.contiguous()` makes the copy explicit: without it, `reshape` returns a view when
        h_kv = 1, and what autograd keeps would then depend on the batch size.
        """
        if self.h_kv == self.h:
            return t
        batch, _, seq, d_head = t.shape
        group = self.h // self.h_kv
        return t[:, :, None].expand(batch, self.h_kv, group, seq, d_head).contiguous().view(batch, self.h, seq, d_head)

    def forward(self, x, attention, causal_mask, cos, sin):
        batch, seq, _ = x.shape
        q = self.split_heads(self.q_proj(x), self.h)
        k = self.split_heads(self.k_proj(x), self.h_kv)
        v = self.split_heads(self.v_proj(x), self.h_kv)
        if self.rope:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = self.repeat_kv(k), self.repeat_kv(v)
        if attention == "flash":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
            scores = scores.masked_fill(causal_mask, float("-inf"))
            out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, seq, self.h * self.d_head)
        return self.o_proj(out)


class FeedForward(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d, d_ff, bias = cfg["d_model"], cfg["d_ff"], cfg["bias"]
        self.kind = cfg["ffn"]
        self.w1 = Linear(d, d_ff, bias)
        self.w2 = Linear(d_ff, d, bias)
        self.w3 = Linear(d, d_ff, bias) if self.kind == "swiglu" else None

    def forward(self, x):
        if self.kind == "swiglu":
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        return self.w2(F.gelu(self.w1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.norm1 = Norm(cfg["d_model"], cfg["norm"], cfg["bias"])
        self.attn = Attention(cfg)
        self.norm2 = Norm(cfg["d_model"], cfg["norm"], cfg["bias"])
        self.ffn = FeedForward(cfg)

    def forward(self, x, attention, causal_mask, cos, sin):
        x = x + self.attn(self.norm1(x), attention, causal_mask, cos, sin)
        return x + self.ffn(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        self.embed = nn.Parameter(torch.randn(cfg["vocab"], d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(cfg["context"], d) * 0.02) if cfg["positions"] == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["layers"]))
        self.final_norm = Norm(d, cfg["norm"], cfg["bias"])
        self.head = None if cfg["tied"] else nn.Parameter(torch.randn(cfg["vocab"], d) * 0.02)
        cos, sin = rope_tables(cfg["context"], d // cfg["heads"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids, targets, attention="explicit", checkpoint="none"):
        """Mean cross-entropy loss of predicting `targets` from `ids`, both [batch, seq] int64.

        With `checkpoint="block"` each block runs under non-reentrant activation
        checkpointing, which saves the block's inputs through the saved-tensor hooks too.
        """
        return self.loss(self.logits(ids, attention, checkpoint), targets)

    @staticmethod
    def loss(logits, targets):
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    def embed_tokens(self, ids):
        """The residual stream's start: token (and learned position) embeddings of `ids`."""
        x = F.embedding(ids, self.embed)
        if self.pos_embed is not None:
            x = x + F.embedding(torch.arange(ids.shape[1], device=ids.device), self.pos_embed)
        return x

    def project(self, x):
        """The head: logits from the final norm's output."""
        return F.linear(x, self.embed if self.head is None else self.head)

    def logits(self, ids, attention="explicit", checkpoint="none"):
        """The logits [batch, seq, vocab] for `ids`."""
        seq = ids.shape[1]
        x = self.embed_tokens(ids)
        causal_mask = None
        if attention == "explicit":
            causal_mask = torch.ones(seq, seq, dtype=torch.bool, device=ids.device).triu(1)
        cos, sin = self.cos[:seq], self.sin[:seq]
        for block in self.blocks:
            if checkpoint == "block":
                x = torch_checkpoint(block, x, attention, causal_mask, cos, sin, use_reentrant=False)
            else:
                x = block(x, attention, causal_mask, cos, sin)
        return self.project(self.final_norm(x))
