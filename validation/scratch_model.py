"""A transformer language model written from scratch under the Stanford CS336 assignment 1 rules.

No torch.nn.functional and no nn.Linear / nn.Embedding: every operation is spelled out the
way students write it, so that `validation/scratch_probe.py` can record exactly which
tensors autograd keeps for backward. The options pick among the common ways of writing
the parts whose saved tensors differ:

- ``softmax`` (inside attention): ``"max"`` subtracts ``x.max(dim=-1, keepdim=True).values``,
  ``"amax"`` subtracts ``torch.amax(x, dim=-1, keepdim=True)``, ``"max-detached"`` subtracts
  ``x.detach().max(...)`` (the max cancels out of the softmax's gradient).
- ``cross_entropy``: ``"logsumexp"`` is ``logits - torch.logsumexp(logits, -1)``; ``"manual"``
  is ``log(sum(exp(logits - max)))`` with ``.max(...).values``; ``"amax-manual"`` the same
  with ``torch.amax``.
- ``pick`` (how the target's log-probability is picked): ``"gather"`` or ``"index"``
  (advanced indexing ``x[torch.arange(N), targets]``).
- ``mask``: ``"where"`` is ``torch.where(mask, scores, -inf)``, ``"masked_fill"`` is
  ``scores.masked_fill(mask, -inf)``. Both build one boolean [s, s] mask per attention call.
- ``rope``: ``"slice"`` takes ``cos[:s]`` (a view of the buffer); ``"index"`` takes
  ``cos[token_positions]`` (a new tensor on every call, as with the assignment's
  ``token_positions`` argument).
- ``linear``: ``"matmul"`` is ``x @ W.T``; ``"einsum"`` is ``einsum("...i,oi->...o", x, W)``.

The shape is a plain dict: vocab, context, layers, d_model, heads, kv_heads (dividing
heads; key/value heads are repeated), d_ff.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EPS = 1e-5


class Linear(nn.Module):
    """y = x W^T, no bias; W is [d_out, d_in]."""

    def __init__(self, d_in: int, d_out: int, style: str = "matmul"):
        super().__init__()
        std = math.sqrt(2.0 / (d_in + d_out))
        self.weight = nn.Parameter(torch.nn.init.trunc_normal_(torch.empty(d_out, d_in), std=std, a=-3 * std, b=3 * std))
        self.style = style

    def forward(self, x):
        if self.style == "einsum":
            return torch.einsum("...i,oi->...o", x, self.weight)
        return x @ self.weight.T


class Embedding(nn.Module):
    def __init__(self, vocab: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.nn.init.trunc_normal_(torch.empty(vocab, d_model), std=1.0, a=-3, b=3))

    def forward(self, token_ids):
        return self.weight[token_ids]


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x²) + eps) * g, computed in fp32 and returned in the input's dtype."""

    def __init__(self, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):
        in_dtype = x.dtype
        x = x.to(torch.float32)
        rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS)
        result = x * rms * self.weight
        return result.to(in_dtype)


class RotaryEmbedding(nn.Module):
    """RoPE on interleaved pairs (x[2i], x[2i+1]) of the last axis, from precomputed tables."""

    def __init__(self, d_head: int, context: int, theta: float = 10000.0, style: str = "slice"):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head))
        angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", torch.cos(angles), persistent=False)
        self.register_buffer("sin", torch.sin(angles), persistent=False)
        self.style = style

    def forward(self, x, token_positions):
        """x: [..., s, d_head]; token_positions: [s] int64."""
        if self.style == "index":
            cos, sin = self.cos[token_positions], self.sin[token_positions]
        else:
            seq = x.shape[-2]
            cos, sin = self.cos[:seq], self.sin[:seq]
        x_even, x_odd = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
        return rotated.flatten(-2)


def softmax(x, dim: int = -1, style: str = "max"):
    if style == "amax":
        m = torch.amax(x, dim=dim, keepdim=True)
    elif style == "max-detached":
        m = x.detach().max(dim=dim, keepdim=True).values
    else:
        m = x.max(dim=dim, keepdim=True).values
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)


def cross_entropy(logits, targets, style: str = "logsumexp", pick: str = "gather"):
    """Mean negative log-likelihood; logits [N, V], targets [N] int64."""

    def picked(t):
        if pick == "index":
            return t[torch.arange(t.shape[0], device=t.device), targets]
        return t.gather(-1, targets[:, None]).squeeze(-1)

    if style == "logsumexp":
        log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        return -picked(log_probs).mean()
    if style == "amax-manual":
        m = torch.amax(logits, dim=-1, keepdim=True)
    else:
        m = logits.max(dim=-1, keepdim=True).values
    shifted = logits - m
    lse = torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
    return -(picked(shifted) - lse.squeeze(-1)).mean()


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, cfg: dict, opts: dict):
        super().__init__()
        d, h = cfg["d_model"], cfg["heads"]
        h_kv = cfg.get("kv_heads", h)
        assert d % h == 0 and h % h_kv == 0
        self.h, self.h_kv, self.d_head = h, h_kv, d // h
        self.q_proj = Linear(d, h * self.d_head, opts["linear"])
        self.k_proj = Linear(d, h_kv * self.d_head, opts["linear"])
        self.v_proj = Linear(d, h_kv * self.d_head, opts["linear"])
        self.output_proj = Linear(h * self.d_head, d, opts["linear"])
        self.rope = RotaryEmbedding(self.d_head, cfg["context"], style=opts["rope"])
        self.softmax, self.mask = opts["softmax"], opts["mask"]

    def heads(self, t, n):
        """[B, s, n * d_head] -> [B, n, s, d_head]"""
        batch, seq, _ = t.shape
        return t.view(batch, seq, n, self.d_head).transpose(1, 2)

    def repeat_kv(self, t):
        """[B, h_kv, s, d_head] -> [B, h, s, d_head], each key/value head repeated h/h_kv times."""
        if self.h_kv == self.h:
            return t
        return t.repeat_interleave(self.h // self.h_kv, dim=1)

    def forward(self, x, token_positions):
        batch, seq, _ = x.shape
        q = self.rope(self.heads(self.q_proj(x), self.h), token_positions)
        k = self.rope(self.heads(self.k_proj(x), self.h_kv), token_positions)
        v = self.heads(self.v_proj(x), self.h_kv)
        k, v = self.repeat_kv(k), self.repeat_kv(v)

        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if self.mask == "masked_fill":
            future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=x.device), diagonal=1)
            scores = scores.masked_fill(future, float("-inf"))
        else:
            allowed = torch.tril(torch.ones(seq, seq, dtype=torch.bool, device=x.device))
            scores = torch.where(allowed, scores, float("-inf"))
        out = softmax(scores, dim=-1, style=self.softmax) @ v
        out = out.transpose(1, 2).reshape(batch, seq, self.h * self.d_head)
        return self.output_proj(out)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int, style: str):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, style)
        self.w2 = Linear(d_ff, d_model, style)
        self.w3 = Linear(d_model, d_ff, style)

    def forward(self, x):
        a = self.w1(x)
        return self.w2(a * torch.sigmoid(a) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: dict, opts: dict):
        super().__init__()
        self.ln1 = RMSNorm(cfg["d_model"])
        self.attn = MultiHeadSelfAttention(cfg, opts)
        self.ln2 = RMSNorm(cfg["d_model"])
        self.ffn = SwiGLU(cfg["d_model"], cfg["d_ff"], opts["linear"])

    def forward(self, x, token_positions):
        x = x + self.attn(self.ln1(x), token_positions)
        return x + self.ffn(self.ln2(x))


class ScratchTransformer(nn.Module):
    def __init__(
        self,
        cfg: dict,
        softmax: str = "max",
        cross_entropy: str = "logsumexp",
        mask: str = "where",
        pick: str = "gather",
        rope: str = "slice",
        linear: str = "matmul",
    ):
        super().__init__()
        assert softmax in ("max", "amax", "max-detached") and mask in ("where", "masked_fill")
        assert cross_entropy in ("logsumexp", "manual", "amax-manual") and pick in ("gather", "index")
        assert rope in ("slice", "index") and linear in ("matmul", "einsum")
        self.cfg = cfg
        opts = dict(softmax=softmax, mask=mask, rope=rope, linear=linear)
        self.cross_entropy, self.pick = cross_entropy, pick
        self.token_embeddings = Embedding(cfg["vocab"], cfg["d_model"])
        self.layers = nn.ModuleList(Block(cfg, opts) for _ in range(cfg["layers"]))
        self.ln_final = RMSNorm(cfg["d_model"])
        self.lm_head = Linear(cfg["d_model"], cfg["vocab"], linear)

    def forward(self, ids, targets):
        """Mean cross-entropy of predicting `targets` from `ids`, both [batch, seq] int64."""
        token_positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embeddings(ids)
        for block in self.layers:
            x = block(x, token_positions)
        logits = self.lm_head(self.ln_final(x))
        return cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), self.cross_entropy, self.pick)
