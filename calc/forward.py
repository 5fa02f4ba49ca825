"""A block's forward pass of the reference implementation, op by op, on a walk.

Two programs share it: the forward pass itself (from the block's input to its output; its
saved tensors accumulate, or under block checkpointing nothing is kept, and autocast's
cache holds every bf16 weight copy until the autocast region exits), and the
recomputation a checkpointed block runs as backward reaches it (PyTorch stops it once the
last saved tensor is made again: W2's input and weight copy). Checked op by op against
the live-tensor timeline of validation/timeline.py.

What it encodes, beyond what each op makes:
- a Python name keeps its tensor until it is bound again or its function returns (the
  Attention's q, k, v and scores until the Attention returns; RoPE's inputs until both
  rotations are made);
- explicit attention's matmuls fold [B, h] into bmm's batch axis, and a projection's
  output seen head-first cannot be folded from two sequences on: it is copied, and the
  copy is what bmm keeps;
- under autocast a linear layer casts its weight, then its input (when fp32); matmul and
  attention cast their fp32 inputs (RoPE's outputs are fp32: bf16 times the fp32 tables).
"""

from __future__ import annotations

from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.walk import FP32, AttentionSaved, Line, Sizes, Walk, weight_matrices


class BlockForward:
    """A block's forward pass, op by op: as backward recomputes a checkpointed block (up to
    the last tensor it saves, where PyTorch stops the recomputation), or as the forward
    pass runs it (to its output). Every tensor has one holder for the code that made it,
    let go where that code drops it, and, where the graph keeps it, one for each node that
    will read it in backward, under the name the backward program frees it by."""

    def __init__(self, walk: Walk, z: Sizes, shape: ModelShape, setup: TrainingSetup, attention: AttentionSaved,
                 copies: dict[str, str], keep: bool, cache: bool):
        self.walk, self.z, self.shape, self.setup, self.attention, self.copies = walk, z, shape, setup, attention, copies
        self.keep = keep  # the graph keeps what it saves (not in a checkpointed block's first forward)
        self.recomputing = False
        self.cache = cache  # autocast's cache holds each bf16 weight copy until the region exits

    def op(self, name: str) -> None:
        """The op the next tensors are made by, as a sentence names it."""
        self.walk.at = f"recomputing {name}" if self.recomputing else name

    def make(self, stem: str, size: Line, saved_by: int = 0) -> str:
        name = self.walk.name(stem)
        self.walk.make(name, size, 1 + (saved_by if self.keep else 0))
        return name

    def saved(self, key: str, name: str) -> None:
        """`key`, the name backward frees it by, is the tensor `name`."""
        self.walk.alias(key, name)

    def done(self, *names: str) -> None:
        self.walk.drop(*names)

    def norm(self, prefix: str, readers: int) -> str:
        """A norm of the stream: its saved tensors, and its output (which `readers` nodes keep)."""
        z, w = self.z, self.walk
        sd = z.s_l * z.d
        self.op({"norm1": "the attention norm", "norm2": "the feed-forward norm"}[prefix])
        if self.shape.norm == "rmsnorm":
            square = self.make("sq", z.per(sd, z.n))
            mean = self.make("mean", z.per(z.s_l, z.n))
            self.done(square)
            shifted = self.make("eps", z.per(z.s_l, z.n))
            self.done(mean)
            rms = self.make("rms", z.per(z.s_l, z.n), saved_by=2)
            self.saved(f"{prefix}-rms", rms)
            self.done(shifted)
            normalised = self.make("normalised", z.per(sd, z.n), saved_by=1)
            self.saved(f"{prefix}-normalised", normalised)
            self.done(rms)
            output = self.make("normed", z.per(sd, z.n), saved_by=readers)
            self.done(normalised)
            return output
        output, stats = self.walk.name("normed"), self.walk.name("stats")
        w.make_together((output, z.per(sd, z.n)), (stats, z.per(2 * z.s_l, z.stats)))
        w.hold(output, readers if self.keep else 0)
        w.hold(stats, 1 if self.keep else 0)
        self.saved(f"{prefix}-stats", stats)
        self.done(stats)
        return output

    def linear(self, key: str, user: str, d_out: int, saved_by: int) -> str:
        """A linear layer's output (which `saved_by` nodes keep); under autocast first its
        weight's bf16 copy and its input's (`key`-`user`), which its backward keeps."""
        z = self.z
        self.op(f"W_{user.upper()}" if len(user) == 1 else user.upper())
        made = []
        if z.cast:
            copy = self.make("copy", z.copy(weight_matrices(self.shape, z)[user]), saved_by=1)
            self.saved(self.copies[user], copy)
            if self.cache:
                self.walk.hold(copy)
                if self.shape.bias:  # the bias's bf16 copy, which only the cache keeps
                    self.walk.make(self.walk.name("bias-copy"), z.copy(d_out))
            made.append(copy)
            if key:
                made.append(self.make("input", z.per(z.s * z.d, z.a), saved_by=1))
                self.saved(f"{key}-{user}", made[-1])
        out = self.make(f"{user}-out", z.per(z.s * d_out, z.a), saved_by=saved_by)
        self.done(*made)
        return out

    def reduced(self, partial: str, linear: str) -> str:
        """A row-parallel linear's output, summed over the tensor-parallel ranks: in place,
        or (z.reduce_copies) into a new tensor made while the partial sums are alive; under
        DTensor's sequence parallelism (z.gathers) reduce-scattered to the rank's tokens,
        from a copy that lays the ranks' chunks out one after another; under Megatron-LM's
        (z.megatron_sp) with none."""
        z = self.z
        if z.gathers or z.megatron_sp:  # Megatron-LM's sequence is the first dimension: no copy to lay it out
            self.op(f"the reduce-scatter of {linear}'s partial sums")
            laid_out = self.make("chunks", z.per(z.s * z.d, z.a)) if z.gathers else None
            total = self.make("reduce-scattered", z.per(z.s_l * z.d, z.a))
            self.done(laid_out, partial)
            return total
        if not z.reduce_copies:
            return partial
        self.op(f"the all-reduce of {linear}'s partial sums")
        total = self.make("all-reduced", z.per(z.s * z.d, z.a))
        self.done(partial)
        return total

    def gathered(self, shard: str, readers: int, layer: str) -> str:
        """Under DTensor's sequence parallelism the norm's output, all-gathered to every
        token for the column-parallel linears (which `readers` nodes keep); from two
        sequences on the gathered chunks are copied into the sequences' order. Else the
        shard itself."""
        z = self.z
        if not z.gathers:
            return shard
        self.op(f"the all-gather of {layer}'s input")
        gathered = self.make("gathered", z.per(z.s * z.d, z.n), saved_by=0 if z.batched else readers)
        if z.batched:
            ordered = self.make("gathered", z.per(z.s * z.d, z.n), saved_by=readers)
            self.done(gathered)
            gathered = ordered
        return gathered

    def rope(self, source: str, heads: int, saved_by: int) -> str:
        z = self.z
        self.op("RoPE")
        half = heads * z.s * z.d_h // 2
        size = FP32 if z.cast else z.a  # bf16 times the fp32 tables is fp32
        first = [self.make("rope", z.per(half, size)) for _ in range(2)]  # x1·cos, x2·sin
        difference = self.make("rope", z.per(half, size))
        self.done(*first)
        second = [self.make("rope", z.per(half, size)) for _ in range(2)]  # x1·sin, x2·cos
        total = self.make("rope", z.per(half, size))
        self.done(*second)
        rotated = self.make("rotated", z.per(2 * half, size), saved_by=saved_by)
        self.done(difference, total)
        return rotated

    def run(self, complete: bool) -> str | None:
        """The block's ops from its input ("norm1-input", alive) on; `complete`: to its
        output, which it returns, else up to W2's saved inputs."""
        shape, setup, z, w = self.shape, self.setup, self.z, self.walk
        swiglu, explicit = shape.ffn == "swiglu", setup.attention == "explicit"
        rope, grouped = shape.positions == "rope", z.h_kv != z.h
        hsd, hss, sf = z.h * z.s * z.d_h, z.h * z.s * z.s, z.s * z.d_ff
        readers = 2 if shape.norm == "rmsnorm" else 1
        # the attention norm, then Q, K and V
        shard = self.norm("norm1", 0 if (z.cast or z.gathers) else 3)
        normed = self.gathered(shard, 0 if z.cast else 3, "Q, K and V")
        if not z.cast:
            self.saved("qkv-input", normed)
        widths = {"q": z.h * z.d_h, "k": z.h_kv * z.d_h, "v": z.h_kv * z.d_h}
        # explicit attention's matmuls fold [B, h] into one batch axis of bmm; a view that cannot be
        # folded (more than one sequence, a projection's output seen head-first) is copied, and
        # the copy is what bmm keeps
        views = {"q": not rope, "k": not rope and not grouped, "v": not grouped}
        folded = {name: view and explicit and z.batched for name, view in views.items()}
        keeps = {name: view and not folded[name] for name, view in views.items()}  # read by the attention as made
        made = {name: (self.linear("qkv-input", name, widths[name], saved_by=keeps[name]), z.a)
                for name in ("q", "k", "v")}
        q, k, v = made["q"], made["k"], made["v"]
        size = FP32 if z.cast else z.a
        if rope:
            q = (self.rope(q[0], z.h, saved_by=not z.cast), size)
            k = (self.rope(k[0], z.h_kv, saved_by=not (z.cast or grouped)), size)
            self.done(made["q"][0], made["k"][0])
        if grouped:  # K and V repeated to all h heads, each a fresh copy
            self.op("the K and V repeat")
            repeated = [(self.make("repeated", z.per(hsd, bytes_), saved_by=not (z.cast and bytes_ == FP32)), bytes_)
                        for _, bytes_ in (k, v)]
            self.done(k[0], v[0])
            k, v = repeated
        self.op("the attention's inputs")
        copies = []  # autocast's bf16 copies of fp32 inputs: what the attention keeps
        for key, (name, bytes_) in (("q", q), ("k", k), ("v", v)):
            if z.cast and bytes_ == FP32:
                copies.append(self.make(key, z.per(hsd, z.a), saved_by=1))
                self.saved(key, copies[-1])
            elif not folded[key]:
                self.saved(key, name)
        held = [q[0], k[0], v[0]]  # the Attention's local names, until it returns

        def fold(key: str) -> list[str]:
            if not folded[key]:
                return []
            copy = self.make(key, z.per(hsd, z.a), saved_by=1)
            self.saved(key, copy)
            return [copy]

        if explicit:
            self.op("QKᵀ")
            copies += fold("q") + fold("k")
            scores = self.make("scores", z.per(hss, z.a))
            self.done(*copies)
            self.op("÷√d_h")
            scaled = self.make("scores", z.per(hss, z.a))
            self.done(scores)
            self.op("the mask")
            masked = self.make("scores", z.per(hss, z.a))
            held.append(masked)  # `scores` names it until the Attention returns
            self.done(scaled)
            self.op("softmax")
            if self.attention.fp32_softmax:  # CUDA autocast: softmax in fp32, P·V reads a bf16 copy of P
                widened = self.make("scores", z.per(hss, FP32))
                probabilities = self.make("P", z.per(hss, FP32), saved_by=1)
                self.done(widened)
                narrowed = self.make("P", z.per(hss, z.a), saved_by=1)
                self.saved("probabilities-bf16", narrowed)
                consumed = (probabilities, narrowed)
            else:
                probabilities = self.make("P", z.per(hss, z.a), saved_by=2)
                consumed = (probabilities,)
            self.saved("probabilities", probabilities)
            self.op("P·V")
            folded_v = fold("v")
            out = self.make("attention", z.per(hsd, z.a))
            self.done(*consumed, *folded_v)
            self.op("the heads' concatenation")
            output = self.make("attention-output", z.per(hsd, z.a), saved_by=1)
            self.done(out)
        else:
            self.op("the attention kernel")
            copied = self.attention.flash_output
            out, lse = self.walk.name("attention"), self.walk.name("lse")
            w.make_together((out, z.per(hsd, z.a)), (lse, self.attention.logsumexp))
            w.hold(out, (1 if copied else 2) if self.keep else 0)
            w.hold(lse, 1 if self.keep else 0)
            self.saved("logsumexp", lse)
            self.done(lse, *copies)
            if copied:
                self.saved("flash-output", out)
                self.op("the heads' concatenation")
                output = self.make("attention-output", z.per(hsd, z.a), saved_by=1)
                self.done(out)
            else:
                output = out
        self.saved("attention-output", output)
        attended = self.reduced(self.linear("", "o", z.d, saved_by=0), "W_O")
        self.done(*held, output, normed, *((shard,) if z.gathers else ()))
        # the residual, the feed-forward norm and the feed-forward layers
        self.op("the residual")
        stream = self.make("residual", z.per(z.s_l * z.d, z.n), saved_by=readers)
        self.saved("norm2-input", stream)
        self.done(attended)
        users = 2 if swiglu else 1
        shard = self.norm("norm2", 0 if (z.cast or z.gathers) else users)
        normed = self.gathered(shard, 0 if z.cast else users, "the feed-forward")
        if not z.cast:
            self.saved("ffn-input", normed)
        hidden = self.linear("ffn-input", "w1", z.d_ff, saved_by=1)
        self.saved("w1-output", hidden)
        self.op("SiLU" if swiglu else "GELU")
        activated = self.make("act", z.per(sf, z.a), saved_by=1)
        self.saved("silu-output" if swiglu else "gelu-output", activated)
        self.done(hidden)
        if swiglu:
            gate = self.linear("ffn-input", "w3", z.d_ff, saved_by=1)
            self.saved("w3-output", gate)
            self.op("SwiGLU's product")
            product = self.make("product", z.per(sf, z.a), saved_by=1)
            self.saved("product", product)
            self.done(activated, gate)
            activated = product
        if not complete:  # recomputation stops once W2 has saved its input (and weight copy)
            if z.cast:
                self.op("W2")
                copy = self.make("copy", z.copy(weight_matrices(shape, z)["w2"]), saved_by=1)
                self.saved(self.copies["w2"], copy)
                self.done(copy)
            self.done(activated, normed, stream, *((shard,) if z.gathers else ()))
            return None
        out = self.reduced(self.linear("", "w2", z.d, saved_by=0), "W2")
        self.done(activated, normed, *((shard,) if z.gathers else ()))
        self.op("the block's residual")
        output = self.make("block-output", z.per(z.s_l * z.d, z.n))
        self.done(out, stream)
        return output


def block_forward_walk(shape: ModelShape, setup: TrainingSetup, z: Sizes,
                       attention_rows: dict[str, tuple[int, int]]) -> Walk:
    """Forward through one block of the reference implementation, from its input to its
    output: what it saves accumulates (nothing under block checkpointing), autocast's cache
    holds each bf16 weight copy; the walk's points count its input too."""
    walk = Walk()
    walk.have("norm1-input", z.per(z.s_l * z.d, z.n))
    copies = {name: f"copy-{name}" for name in weight_matrices(shape, z)} if z.cast else {}
    BlockForward(walk, z, shape, setup, AttentionSaved.of(attention_rows), copies, keep=setup.checkpoint != "block",
                 cache=z.cast).run(complete=True)
    return walk
