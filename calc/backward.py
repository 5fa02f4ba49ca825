"""Backward through the loss, LM head and final norm, a block, and the embeddings, op by op.

The reference implementation's backward runs as autograd's engine runs it on one device:
node after node, in the order the engine picks (the node made last in the forward pass
first), each node making its gradients, then releasing what it saved and the gradient it
was handed. A `Walk` follows that program and records the bytes alive after every op
that allocates; the most of them is the part of a backward moment that rises and falls
inside the block (or the head).

What the program encodes, each step read from PyTorch's autograd formulas
(tools/autograd/derivatives.yaml) and checked op by op against a live-tensor timeline of
real CPU steps (validation/timeline.py):
- a linear layer's backward makes its weight's gradient, then its input's (with a bias,
  addmm's: the input's, the weight's, then the bias's); under autocast in bf16, then the
  casts' own backward makes the fp32 ones (the input's first);
- a tensor read by two ops gets two gradients; the engine adds them into a new tensor and
  frees both;
- a gradient nobody accumulates into is kept as the parameter's `.grad` (set_to_none
  leaves none); accumulating over micro-batches, it is added into the held one in place
  and freed;
- an op's own temporaries live until its formula returns (rsqrt's and pow's backward
  keep all three of theirs until then).

Sizes are `Line`s: bytes = per_sequence · B + constant.
"""

from __future__ import annotations

from calc.activations.autograd import bf16_log_softmax, kernel_pads, sdpa_kernel
from calc.forward import BlockForward
from calc.layout.split import split_rows
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.walk import FP32, AttentionSaved, Line, Sizes, Walk, weight_matrices

NORM_NAMES = {"norm1": "the attention norm", "norm2": "the feed-forward norm", "final-norm": "the final norm"}


class _Buffers:
    """The engine's input buffers: the gradient each node is handed, by node. A second
    gradient for the same node is added to the first into a new tensor, which frees both."""

    def __init__(self, walk: Walk):
        self.walk = walk
        self.held: dict[str, str] = {}

    def name(self, stem: str) -> str:
        return self.walk.name(stem)

    def give(self, node: str, grad: str, size: Line) -> None:
        old = self.held.get(node)
        if old is None:
            self.held[node] = grad
            return
        total = self.name(node)
        self.walk.make(total, size)
        self.walk.drop(old, grad)
        self.held[node] = total

    def take(self, node: str) -> str:
        return self.held.pop(node)


class _Program:
    """The backward program of the reference implementation's parts, on one walk."""

    def __init__(self, z: Sizes, bias: bool):
        self.z = z
        self.bias = bias
        self.early = False  # checkpointed: a saved tensor is freed once its node's formula returns
        self.saved_attention = AttentionSaved()
        self.walk = Walk()
        self.buffers = _Buffers(self.walk)

    # -- what every part is made of -------------------------------------------------------

    def keep(self, name: str, size: Line, holders: int = 1) -> None:
        """A tensor saved for backward (alive when the walk starts)."""
        self.walk.have(name, size, holders)

    def parameter_gradient(self, grad: str) -> None:
        """AccumulateGrad: the new gradient becomes `.grad`, or is added into the held one
        in place and freed."""
        if self.z.accumulating:
            self.walk.drop(grad)

    def cast_back(self, grad: str, values: Line, size: int) -> str:
        """The backward of a cast: the gradient in the cast's input dtype; the other freed."""
        out = self.buffers.name(grad)
        self.walk.make(out, Line(values.per_sequence * size, values.constant * size))
        self.walk.drop(grad)
        return out

    def linear(self, layer: str, grad: str, saved: str, copy: str | None, d_in: int, d_out: int, into: str | None,
               cast_input: bool) -> str | None:
        """A linear layer's backward (mm on the flattened input): the weight's gradient,
        then the input's; the node frees its gradient, its saved input and weight copy.
        Under autocast the casts' backward follow: the input's (when autocast cast it),
        which the engine hands on (into the node `into`), then the weight's."""
        z, w = self.z, self.walk
        w.at = f"{layer}'s backward"
        weight, grad_in, shift = self.buffers.name("dW"), self.buffers.name("dx"), self.buffers.name("db")
        if self.bias:  # addmm: the input's gradient, the weight's, then the bias's: the engine sums
            w.make(grad_in, z.per(z.s * d_in, z.a))  # the output's gradient over the tokens once the
            w.make(weight, z.fixed(d_in * d_out, z.a))  # formula has returned
            if self.early:
                w.drop(saved, copy)
                saved = copy = None
            w.make(shift, z.fixed(d_out, z.a))
        else:  # mm: the weight's gradient, then the input's
            w.make(weight, z.fixed(d_in * d_out, z.a))
            w.make(grad_in, z.per(z.s * d_in, z.a))
        w.drop(grad, saved, copy)
        if z.cast and cast_input:
            grad_in = self.cast_back(grad_in, Line(z.s * d_in), FP32)
        if into is not None:  # the engine hands a node's outputs on before the next node runs
            self.buffers.give(into, grad_in, z.per(z.s * d_in, FP32 if cast_input and z.cast else z.n))
            grad_in = None
        if not z.cast:
            self.parameter_gradient(weight)
            if self.bias:
                self.parameter_gradient(shift)
        if z.cast:
            self.parameter_gradient(self.cast_back(weight, Line(0, d_in * d_out), FP32))
            if self.bias:
                self.parameter_gradient(self.cast_back(shift, Line(0, d_out), FP32))
        return grad_in

    def split(self, grad: str, residual: str, cast: bool) -> str:
        """An add's backward hands its gradient to both inputs: to the node `residual` as it
        is, to the branch cast to bf16 where the branch is bf16 under autocast."""
        z = self.z
        self.walk.at = "the residual's backward"
        self.walk.hold(grad)
        self.buffers.held[residual] = grad
        if cast and z.cast:
            branch = self.buffers.name("branch")
            self.walk.make(branch, z.per(z.s_l * z.d, z.a))
            self.walk.drop(grad)
            return self.gathered(branch, z.a)
        return self.gathered(grad, z.n)

    def gathered(self, grad: str, size: int) -> str:
        """Under DTensor's sequence parallelism (the backward of the reduce-scatter after a
        row-parallel linear) the gradient of the rank's tokens, all-gathered to every token
        (`size` bytes a value); from two sequences on the chunks are copied into the
        sequences' order. Under Megatron-LM's (z.megatron_sp) the same, with no copy (its
        sequence is the first dimension). Else the gradient itself."""
        z, w = self.z, self.walk
        if not (z.gathers or z.megatron_sp):
            return grad
        w.at = "the all-gather of the gradient"
        gathered = self.buffers.name("gathered")
        w.make(gathered, z.per(z.s * z.d, size))
        if z.batched and z.gathers:
            ordered = self.buffers.name("gathered")
            w.make(ordered, z.per(z.s * z.d, size))
            w.drop(gathered)
            gathered = ordered
        w.drop(grad)
        return gathered

    def scattered(self, grad: str, size: int) -> str:
        """Under DTensor's sequence parallelism (the backward of the all-gather before the
        column-parallel linears) the summed gradient of every token, reduce-scattered to the
        rank's tokens from a copy laid out rank by rank (`size` bytes a value); under
        Megatron-LM's with no copy. Else the gradient itself."""
        z, w = self.z, self.walk
        if not (z.gathers or z.megatron_sp):
            return grad
        w.at = "the reduce-scatter of the gradient"
        laid_out, out = self.buffers.name("chunks"), self.buffers.name("scattered")
        if z.gathers:
            w.make(laid_out, z.per(z.s * z.d, size))
        w.make(out, z.per(z.s_l * z.d, size))
        w.drop(laid_out if z.gathers else None, grad)
        return out

    def rms_norm(self, prefix: str, grad: str, into: str) -> None:
        """RMSNorm written out, x · rsqrt(mean(x²) + ε) · g: the gain's gradient (and the
        gradient it sums from), the gradients of x·rms, of the inverse RMS and of x; each
        gradient of x is added into the buffer `into` as it comes."""
        z, w, sd, n = self.z, self.walk, self.z.s_l * self.z.d, self.z.n
        w.at = f"{NORM_NAMES[prefix]}'s backward"
        # (x·rms)·g
        grad_xr, product, gain = (self.buffers.name(k) for k in ("dxr", "tmp", "dg"))
        w.make(grad_xr, z.per(sd, n))
        w.make(product, z.per(sd, n))
        if self.early:  # the engine sums the gain's gradient after the formula returns
            w.drop(f"{prefix}-normalised")
        w.make(gain, z.fixed(z.d, n))
        w.drop(product, grad, None if self.early else f"{prefix}-normalised")
        self.parameter_gradient(gain)
        # x·rms
        grad_x, product, grad_rms = (self.buffers.name(k) for k in ("dx", "tmp", "drms"))
        w.make(grad_x, z.per(sd, n))
        w.make(product, z.per(sd, n))
        w.make(grad_rms, z.per(z.s_l, n))
        w.drop(product, grad_xr, f"{prefix}-input", f"{prefix}-rms")
        self.buffers.give(into, grad_x, z.per(sd, n))
        # rsqrt: −½ · grad · rms³, its two temporaries alive until the formula returns
        temps = [self.buffers.name("tmp") for _ in range(2)]
        grad_mean = self.buffers.name("dmean")
        for name in (*temps, grad_mean):
            w.make(name, z.per(z.s_l, n))
        w.drop(*temps, grad_rms, f"{prefix}-rms")
        # mean (after + ε): the gradient expanded and divided by d
        grad_square = self.buffers.name("dsq")
        w.make(grad_square, z.per(sd, n))
        w.drop(grad_mean)
        # x²: grad · 2 · x¹
        temps = [self.buffers.name("tmp") for _ in range(2)]
        grad_x = self.buffers.name("dx")
        for name in (*temps, grad_x):
            w.make(name, z.per(sd, n))
        w.drop(*temps, grad_square, f"{prefix}-input")
        self.buffers.give(into, grad_x, z.per(sd, n))

    def rope(self, grad: str, into: str, heads: int) -> None:
        """RoPE on interleaved pairs, (x1·cos − x2·sin, x1·sin + x2·cos) stacked: each
        product's gradient (cast back to bf16 under autocast: x1 and x2 are bf16 there,
        the tables fp32), the sums into x1's and x2's, then each select's gradient, a
        zero-filled tensor of the pairs, added together into `into`."""
        z, w = self.z, self.walk
        w.at = "RoPE's backward"
        hsd = heads * z.s * z.d_h
        half, grad_bytes = hsd // 2, FP32 if z.cast else z.a
        self.walk.hold(grad, 2)  # the second sum's two products and the first sum's x1·cos read views of it

        def product(source: str) -> str:
            made = self.buffers.name("dpair")
            w.make(made, z.per(half, grad_bytes))
            if z.cast:  # the engine casts a node's outputs before the node lets go of its input
                made = self.cast_back(made, Line(half), z.a)
            w.drop(source)
            return made

        self.buffers.give("x2", product(grad), z.per(half, z.a))  # x2·cos
        self.buffers.give("x1", product(grad), z.per(half, z.a))  # x1·sin
        negated = self.buffers.name("neg")  # the difference's backward: −grad for x2·sin
        w.make(negated, z.per(half, grad_bytes))
        self.buffers.give("x2", product(negated), z.per(half, z.a))  # x2·sin
        self.buffers.give("x1", product(grad), z.per(half, z.a))  # x1·cos
        for part in ("x2", "x1"):
            selected = self.buffers.name("dselect")
            w.make(selected, z.per(hsd, z.a))
            w.drop(self.buffers.take(part))
            self.buffers.give(into, selected, z.per(hsd, z.a))

    def attention_core(self, grad: str, explicit: bool) -> tuple[str, str, str]:
        """The gradients of Q, K and V (in the attention's dtype) from the gradient of its
        output; the core frees what it saved."""
        z, w = self.z, self.walk
        hsd, hss = z.h * z.s * z.d_h, z.h * z.s * z.s
        names = [self.buffers.name(k) for k in ("dq", "dk", "dv")]
        w.at = "the attention kernel's backward"
        if not explicit:
            w.make_together(*((name, z.per(hsd, z.a)) for name in names))
            w.drop(grad, "q", "k", "v", "logsumexp", "attention-output" if w.alive("attention-output") else None)
            if w.alive("flash-output"):
                w.drop("flash-output")
            return tuple(names)
        grad_q, grad_k, grad_v = names
        w.at = "P·V's backward"
        w.make(grad_v, z.per(hsd, z.a))  # P·V: V's gradient, then P's
        grad_p = self.buffers.name("dP")
        w.make(grad_p, z.per(hss, z.a))
        fp32_softmax = self.saved_attention.fp32_softmax  # CUDA autocast: softmax in fp32, P·V reads a bf16 copy
        w.drop(grad, "v", "probabilities-bf16" if fp32_softmax else "probabilities")
        if fp32_softmax:
            grad_p = self.cast_back(grad_p, Line(hss), FP32)
        for keeps, op in (("probabilities", "softmax"), (None, "the mask"), (None, "÷√d_h")):
            w.at = f"{op}'s backward"
            made = self.buffers.name("dscores")
            w.make(made, z.per(hss, FP32 if (fp32_softmax and keeps) else z.a))
            w.drop(grad_p, keeps)
            grad_p = self.cast_back(made, Line(hss), z.a) if (fp32_softmax and keeps) else made
        w.at = "QKᵀ's backward"
        w.make(grad_k, z.per(hsd, z.a))  # QKᵀ: Kᵀ's gradient, then Q's
        w.make(grad_q, z.per(hsd, z.a))
        w.drop(grad_p, "q", "k")
        return grad_q, grad_k, grad_v

    def repeat_sum(self, grad: str) -> str:
        """Grouped-query attention's repeat (expand, then a copy): the gradient summed over
        each group of heads."""
        z = self.z
        summed = self.buffers.name("dkv")
        self.walk.at = "the K and V repeat's backward"
        self.walk.make(summed, z.per(z.h_kv * z.s * z.d_h, z.a))
        self.walk.drop(grad)
        return summed

    def layer_norm(self, prefix: str, grad: str, into: str, bias: bool) -> None:
        """F.layer_norm: one kernel makes the gradients of x, the gain and the bias."""
        z, w = self.z, self.walk
        grad_x, gain, shift = (self.buffers.name(k) for k in ("dx", "dg", "db"))
        w.at = f"{NORM_NAMES[prefix]}'s backward"
        w.make_together((grad_x, z.per(z.s_l * z.d, z.n)), (gain, z.fixed(z.d, z.n)),
                        *(((shift, z.fixed(z.d, z.n)),) if bias else ()))
        w.drop(grad, f"{prefix}-input", f"{prefix}-stats")
        self.buffers.give(into, grad_x, z.per(z.s_l * z.d, z.n))
        self.parameter_gradient(gain)
        if bias:
            self.parameter_gradient(shift)


def _norm_saved(program: _Program, shape: ModelShape, prefix: str) -> None:
    z = program.z
    if shape.norm == "rmsnorm":
        program.keep(f"{prefix}-input", z.per(z.s_l * z.d, z.n), holders=2)  # x² and x·rms
        program.keep(f"{prefix}-rms", z.per(z.s_l, z.n), holders=2)  # rsqrt (its output) and x·rms
        program.keep(f"{prefix}-normalised", z.per(z.s_l * z.d, z.n))
    else:
        program.keep(f"{prefix}-input", z.per(z.s_l * z.d, z.n))
        program.keep(f"{prefix}-stats", z.per(2 * z.s_l, z.stats))


def _norm(program: _Program, shape: ModelShape, prefix: str, grad: str, into: str) -> None:
    if shape.norm == "rmsnorm":
        program.rms_norm(prefix, grad, into)
    else:
        program.layer_norm(prefix, grad, into, shape.bias)


def _shared_input(program: _Program, key: str, users: tuple[str, ...]) -> None:
    """The input several linear layers read: one tensor they all keep (`key`), or under
    autocast one bf16 copy each (`key`-user)."""
    z = program.z
    if not z.cast:
        program.keep(key, z.per(z.s * z.d, z.a), holders=len(users))
        return
    for user in users:
        program.keep(f"{key}-{user}", z.per(z.s * z.d, z.a))


def block_walk(shape: ModelShape, setup: TrainingSetup, z: Sizes, attention_rows: dict[str, tuple[int, int]]) -> Walk:
    """Backward through one block of the reference implementation: the walk starts with
    what the block saved (and its bf16 weight copies), or under block checkpointing its
    input alone, and the gradient of its output; it ends with the gradient of its input
    and the block's parameter gradients. A checkpointed block runs its forward pass again
    as backward reaches it (after the first gradient is cast, which saves nothing).

    attention_rows: the attention core's saved tensors (key: (bytes per sequence,
    holders)), as the activation rows name them."""
    program = _Program(z, shape.bias)
    w, swiglu, explicit = program.walk, shape.ffn == "swiglu", setup.attention == "explicit"
    rope, grouped = shape.positions == "rope", z.h_kv != z.h
    recompute = setup.checkpoint == "block"
    program.early = recompute
    program.saved_attention = AttentionSaved.of(attention_rows)
    sf, hsd = z.s * z.d_ff, z.h * z.s * z.d_h
    norm_readers = 2 if shape.norm == "rmsnorm" else 1
    copies = {name: f"copy-{name}" for name in weight_matrices(shape, z)} if z.cast else {}
    casts = rope and z.table_casts > 0  # FSDP2's bf16 RoPE tables: kept by the block's RoPE (not its rows)
    if recompute:
        # the block's input, which the checkpoint keeps
        program.keep("norm1-input", z.per(z.s_l * z.d, z.n), holders=norm_readers)
    else:  # what the block saved, in the order of the forward pass
        if casts:
            program.keep("table-casts", Line(0, z.table_casts))
        _norm_saved(program, shape, "norm1")
        _shared_input(program, "qkv-input", ("v", "k", "q"))
        for key, (size, holders) in attention_rows.items():
            program.keep(key, Line(size), holders)
        _norm_saved(program, shape, "norm2")
        _shared_input(program, "ffn-input", ("w3", "w1") if swiglu else ("w1",))
        for key in (("w1-output", "silu-output", "w3-output", "product") if swiglu else ("w1-output", "gelu-output")):
            program.keep(key, z.per(sf, z.a))
        for name, values in weight_matrices(shape, z).items() if z.cast else ():
            program.keep(copies[name], z.copy(values))
    w.baseline = w.live
    grad = "g-out"
    w.have(grad, Line(0) if z.gradient_held else z.per(z.s_l * z.d, z.n))  # a pipeline's buffer: held outside
    # the feed-forward branch
    branch = program.split(grad, "mid", cast=True)
    if recompute:
        if casts:  # FSDP2's pre-forward casts the tables again for the rerun
            w.make("table-casts", Line(0, z.table_casts))
        recomputation = BlockForward(w, z, shape, setup, program.saved_attention, copies, keep=True, cache=False)
        recomputation.recomputing = True
        recomputation.run(complete=False)
    qkv = {name: "qkv-input" if not z.cast else f"qkv-input-{name}" for name in ("q", "k", "v")}
    ffn = {name: "ffn-input" if not z.cast else f"ffn-input-{name}" for name in ("w1", "w3")}
    grad_hidden = program.linear("W2", branch, "product" if swiglu else "gelu-output", copies.get("w2"), z.d_ff, z.d,
                                 None, cast_input=False)
    grad_w1 = program.buffers.name("dw1")
    if swiglu:  # SiLU(W1 x) ⊙ W3 x
        grad_silu, grad_w3 = program.buffers.name("dsilu"), program.buffers.name("dw3")
        w.at = "the backward of SwiGLU's product"
        w.make(grad_silu, z.per(sf, z.a))
        w.make(grad_w3, z.per(sf, z.a))
        w.drop(grad_hidden, "silu-output", "w3-output")
        program.linear("W3", grad_w3, ffn["w3"], copies.get("w3"), z.d, z.d_ff, "norm2-out", cast_input=True)
        w.at = "SiLU's backward"
        w.make(grad_w1, z.per(sf, z.a))
        w.drop(grad_silu, "w1-output")
    else:
        w.at = "GELU's backward"
        w.make(grad_w1, z.per(sf, z.a))
        w.drop(grad_hidden, "w1-output")
    program.linear("W1", grad_w1, ffn["w1"], copies.get("w1"), z.d, z.d_ff, "norm2-out", cast_input=True)
    input_grad = FP32 if z.cast else z.n  # the linears' inputs' gradients, cast back under autocast
    _norm(program, shape, "norm2", program.scattered(program.buffers.take("norm2-out"), input_grad), "mid")
    # the attention branch
    branch = program.split(program.buffers.take("mid"), "in", cast=True)
    grad_heads = program.linear("W_O", branch, "attention-output", copies.get("o"), z.h * z.d_h, z.d, None,
                                cast_input=False)
    grad_q, grad_k, grad_v = program.attention_core(grad_heads, explicit)
    if z.cast and rope:  # autocast cast RoPE's fp32 outputs to bf16 for the attention
        grad_q = program.cast_back(grad_q, Line(hsd), FP32)
        grad_k = program.cast_back(grad_k, Line(hsd), FP32)
    if grouped:
        grad_v, grad_k = program.repeat_sum(grad_v), program.repeat_sum(grad_k)
    if rope:
        program.rope(grad_k, "k-pairs", z.h_kv)
        program.rope(grad_q, "q-pairs", z.h)
        if casts:  # RoPE's nodes let go of the tables
            w.drop("table-casts")
        grad_k, grad_q = program.buffers.take("k-pairs"), program.buffers.take("q-pairs")
    for name, grad_out, heads in (("v", grad_v, z.h_kv), ("k", grad_k, z.h_kv), ("q", grad_q, z.h)):
        # a gradient made contiguous as [B, h, s, d_h] (by P·V's and QKᵀ's backward for V and Q, by
        # RoPE, by the repeat's sum) takes a copy to be viewed as [B, s, h·d_h]; Kᵀ's gradient and
        # the fused kernels' (made in their inputs' layout) need none
        if {"q": explicit or rope, "k": rope or grouped, "v": explicit or grouped}[name]:
            w.at = f"the split of {name.upper()}'s heads, backward"
            copied = program.buffers.name("dsplit")
            w.make(copied, z.per(heads * z.s * z.d_h, z.a))
            w.drop(grad_out)
            grad_out = copied
        program.linear(f"W_{name.upper()}", grad_out, qkv[name], copies.get(name), z.d, heads * z.d_h, "norm1-out",
                       cast_input=True)
    _norm(program, shape, "norm1", program.scattered(program.buffers.take("norm1-out"), input_grad), "in")
    return w


LOSS_OPS = frozenset(("NLL's backward", "the cast's backward", "log-softmax's backward"))
"""The ops of head_walk that are the loss's backward, before the logits' gradient is whole."""


def head_walk(shape: ModelShape, setup: TrainingSetup, z: Sizes) -> Walk:
    """Backward through the loss, the LM head and the final norm: the walk starts with what
    they saved (the log-probabilities, the head's input, the norm's tensors; the head's
    bf16 copy) and ends with the gradient of the last block's output and their parameter
    gradients. Cross-entropy runs in the stream's dtype (fp32, also under CPU autocast),
    but under CUDA's bf16 autocast log-softmax runs in bf16 and NLL on an fp32 copy of its
    output, so NLL's gradient is cast back to bf16 before log-softmax's backward. DTensor's
    vocabulary-parallel loss (loss_parallel) makes log-softmax's gradient in NLL's backward
    (torch 2.13, torch/distributed/tensor/parallel/loss.py `_nll_loss_and_log_softmax_
    backward`; the temporaries inside it are not seen by the CPU timeline, nor counted)."""
    program = _Program(z, bias=False)
    w = program.walk
    sV = z.s * z.vocab
    bf16_log_probs = bf16_log_softmax(setup)
    _norm_saved(program, shape, "final-norm")
    program.keep("head-input", z.per(z.s * z.d, z.a))
    if bf16_log_probs:
        program.keep("log-probs", z.per(sV, 2))  # log-softmax's output
        program.keep("log-probs-fp32", z.per(sV, FP32))  # its copy, which NLL keeps
    else:
        program.keep("log-probs", z.per(sV, z.n), holders=2)  # log-softmax and NLL
    copy = None
    if z.cast:
        copy = "copy-head"
        program.keep(copy, z.copy(z.vocab * z.d))
    w.baseline = w.live
    seed, grad_log_probs, grad_logits = "dloss", "dlogp", "dlogits"
    w.at = "NLL's backward"
    w.make(seed, z.fixed(1, z.n))  # backward's seed: ones_like(loss)
    if z.loss_parallel:
        _nll_and_log_softmax_backward(program, grad_log_probs)
    else:
        w.make(grad_log_probs, z.per(sV, z.n))  # NLL's backward
    w.drop(seed, "log-probs-fp32" if bf16_log_probs else "log-probs")
    if bf16_log_probs:
        w.at = "the cast's backward"
        grad_log_probs = program.cast_back(grad_log_probs, Line(sV), 2)
    w.at = "log-softmax's backward"
    if z.loss_parallel:  # NLL's backward made log-softmax's gradient too; this one casts it to its input's dtype
        grad_logits = grad_log_probs
        w.drop("log-probs")
    else:
        w.make(grad_logits, z.per(sV, 2 if bf16_log_probs else z.n))  # log-softmax's
        w.drop(grad_log_probs, "log-probs")
    if z.cast and not bf16_log_probs:  # CPU autocast ran cross-entropy in fp32 on a copy of the bf16 logits
        grad_logits = program.cast_back(grad_logits, Line(sV), z.a)
    program.linear("the LM head", grad_logits, "head-input", copy, z.d, z.vocab, "final-out", cast_input=True)
    grad = program.scattered(program.buffers.take("final-out"), FP32 if z.cast else z.n)
    _norm(program, shape, "final-norm", grad, "out")
    return w


def _nll_and_log_softmax_backward(program: _Program, grad: str) -> None:
    """DTensor's loss_parallel backward through NLL and log-softmax together, written out
    on the rank's share of the vocabulary (torch 2.13, torch/distributed/tensor/parallel/
    loss.py `_nll_loss_and_log_softmax_backward`): per token the safe targets, the
    vocabulary mask, the masked targets (int64 each but the mask), the update and the
    broadcast gradient (fp32), a row index (int64); then zeros, exp(log-probabilities) and
    their sum, of which the product with the gradient is `grad` (fp32 throughout)."""
    z, w = program.z, program.walk
    sV = z.s * z.vocab
    per_token = program.buffers.name("per-token")
    w.make(per_token, z.per(z.s * (8 + 1 + 8 + FP32 + 8 + FP32), 1))
    zeros, exponentials, total = (program.buffers.name(k) for k in ("zeros", "exp", "sum"))
    for name in (zeros, exponentials, total):
        w.make(name, z.per(sV, FP32))
    w.drop(exponentials)  # a temporary, freed once summed
    w.make(grad, z.per(sV, FP32))
    w.drop(zeros, total, per_token)


ATTENTION_KEYS = ("q", "k", "probabilities", "probabilities-bf16", "v", "logsumexp", "flash-output", "attention-output")
"""The attention core's saved tensors, as the activation rows name them."""


def attention_rows(shape: ModelShape, setup: TrainingSetup) -> dict[str, tuple[int, int]]:
    """The attention core's saved tensors on one GPU: key → (bytes per sequence in one
    block, how many nodes keep it)."""
    rows = {r.key: r for r in split_rows(shape, setup.replace(checkpoint="none")) if r.stage == "block"}
    kept = {}
    for key in ATTENTION_KEYS:
        if key in rows:
            holders = 1
            if key == "probabilities" and "probabilities-bf16" not in rows:
                holders = 2  # softmax and P·V
            if key == "attention-output" and setup.attention == "flash" and "flash-output" not in rows:
                holders = 2  # the kernel's output is what W_O reads
            kept[key] = (rows[key].bytes_for_batch(1) // shape.layers, holders)
    return kept


def walks_apply(shape: ModelShape, setup: TrainingSetup) -> bool:
    """Whether the backward program describes this setup: the reference implementation
    with every parameter training (not LoRA's adapters alone), nothing or whole blocks
    recomputed, and no attention kernel the walks lack (the math composite, or flash on
    padded heads)."""
    if not (setup.accounting == "autograd" and shape.implementation == "reference" and setup.finetune == "full"
            and setup.checkpoint in ("none", "block")):
        return False
    if setup.attention == "flash" and setup.device == "cuda":
        return sdpa_kernel(shape, setup) != "math" and not kernel_pads(shape, setup)
    return True


def embedding_walk(shape: ModelShape, setup: TrainingSetup, z: Sizes, tied: bool, rows: int | None = None) -> Walk:
    """Backward through the embeddings: from the first block's input gradient, the learned
    positions' gradient (the batch summed first) and the token embedding's, of `rows`
    rows (the GPU's share of the vocabulary by default, or all V where the framework
    computes it whole); with `tied`, the head's gradient of the shared matrix waits for the
    embedding's and the two are added. The walk starts with the position ids the lookup
    saved (int64)."""
    program = _Program(z, bias=False)
    w = program.walk
    matrix = z.fixed((z.vocab if rows is None else rows) * z.d, z.n)
    learned = shape.positions == "learned"
    if learned:
        program.keep("position-ids", z.fixed(z.s, 8))
    w.baseline = w.live
    w.have("g-x", z.per(z.s_l * z.d, z.n))
    if tied:
        w.have("head-grad", matrix)
    if learned:  # x = tokens + positions: the positions' gradient is summed over the batch
        w.at = "the position embedding's backward"
        summed, positions = program.buffers.name("dpos"), program.buffers.name("dW")
        w.make(summed, z.fixed(z.s * z.d, z.n))
        w.make(positions, z.fixed(shape.max_positions * z.d, z.n))
        w.drop(summed, "position-ids")
        program.parameter_gradient(positions)
    grad = program.gathered("g-x", z.n)  # under sequence parallelism: every token's, for the lookup's backward
    tokens = program.buffers.name("dW")
    w.at = "the token embedding's backward"
    w.make(tokens, matrix)
    w.drop(grad)
    if tied:
        total = program.buffers.name("dW")
        w.at = "adding the tied matrix's two gradients"
        w.make(total, matrix)
        w.drop("head-grad", tokens)
        tokens = total
    program.parameter_gradient(tokens)
    return w
