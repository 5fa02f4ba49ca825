"""What autograd keeps when peft's LoRA trains Hugging Face's Llama-style code
(`finetune lora`; calc.lora has the adapters), as peft 0.21 and transformers 5.23 run it in
training mode on the CPU (torch 2.13), SDPA attention; GPT-2's code (lora_gpt2_rows) by
the same rules, over full training's rows.

Autograd keeps a tensor only for a gradient it will compute, and under LoRA only the
adapters train. So, against full training (calc.activations.hf):

- a frozen linear layer keeps no input (its weight's gradient is not computed): the
  Q/K/V and feed-forward inputs, the head's input and down_proj's are kept only where an
  adapter keeps them; a frozen norm gain keeps no x·rms; a frozen embedding no token ids;
- the embedding's output needs no gradient, so the first layer's attention norm keeps
  nothing (under gradient checkpointing enable_input_require_grads makes it need one:
  each layer then keeps its input, as in full training);
- each targeted layer keeps what its adapter needs: peft casts the input to the
  adapters' dtype (fp32), applies dropout (keeping its mask, on the CPU a tensor of the
  input's dtype, and its output) and A keeps what it multiplies, B keeps A's r-wide output.
  At dropout 0 in fp32 the input itself is kept, once for the layers that share it; under
  bf16 autocast A multiplies a bf16 copy of its input, one for each targeted layer (and
  autocast caches the adapters' bf16 copies); with a bf16 base each targeted layer keeps
  its input's fp32 copy;
- under bf16 autocast a frozen weight's bf16 copy is not cached (autocast caches only
  weights that need gradients) but is kept by its matmul for the input's gradient: every
  base matrix whose input needs a gradient (in the first layer not Q, K and V), and the
  head's.

Over an int8 base (QLoRA's quant_type int8) bitsandbytes' matmul also keeps each int8
layer's input (_int8_inputs), even under non-reentrant checkpointing.

Every row is checked to the byte against validation/results-lora.json (tests/engine/
test_lora.py).
"""

from __future__ import annotations

from dataclasses import replace

from calc.activations.autograd import autograd_table, sdpa_kernel
from calc.activations.hf import FP32, INDEX, _gpt2_rows, _kernel_rows, _mask_bytes, _sdpa_kernel, _sliding_mask
from calc.lora import INT8_THRESHOLD, activation_setup, keeps_int8_inputs, layer_linears, targets
from calc.setup import TrainingSetup
from calc.shape import ModelShape, is_gpt2
from calc.table import Table, f, row, symbol_values


def lora_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """What autograd keeps at the end of a LoRA step's forward pass; rows per sequence."""
    int8_inputs = keeps_int8_inputs(setup)
    setup = activation_setup(setup)
    if setup.attention == "flash":
        _sdpa_kernel(shape, setup, _sliding_mask(shape))
    if is_gpt2(shape):
        return Table("autograd", "What autograd keeps: Hugging Face GPT-2 code under peft's LoRA",
                     tuple(lora_gpt2_rows(shape, setup)), batch=setup.batch)
    if shape.implementation == "reference":
        return Table("autograd", "What autograd keeps: the reference implementation under peft's LoRA",
                     tuple(lora_reference_rows(shape, setup)), batch=setup.batch)
    return Table("autograd", "What autograd keeps: Hugging Face Llama-style code under peft's LoRA",
                 tuple(lora_llama_rows(shape, setup, int8_inputs)), batch=setup.batch, notes=_int8_notes(setup))


def _int8_notes(setup: TrainingSetup) -> tuple[str, ...]:
    """On CUDA over an int8 base: what bitsandbytes keeps that depends on the data."""
    if not keeps_int8_inputs(setup) or setup.device != "cuda":
        return ()
    return (f"Not counted: on CUDA each int8 layer also keeps its input's outlier columns (subA: the columns holding a "
            f"value of magnitude {INT8_THRESHOLD} or more, llm_int8_threshold), {setup.stream_bytes} bytes a token "
            "for each such column, "
            "which depend on the data; from none to the whole input again (derived from bitsandbytes' source, "
            "MatMul8bitLt; not measured on a GPU).",)


def lora_llama_rows(shape: ModelShape, setup: TrainingSetup, int8_inputs: bool = False) -> list:
    """The rows (per sequence) of a LoRA step of Llama-style code; `int8_inputs`: with the
    inputs an int8 base's matmuls keep (calc.lora.keeps_int8_inputs)."""
    v = symbol_values(shape) | {"r": setup.lora_rank, "L_1": shape.layers - 1}
    regime = {"fp32": "fp32", "bf16": "autocast", "bf16-master": "bf16 base"}[setup.dtype]
    a = 4 if regime == "fp32" else 2  # the layers' outputs: fp32, or bf16 (autocast's, or the base's)
    stream = 2 if regime == "bf16 base" else FP32  # the residual stream
    chosen = targets(setup.lora_targets, shape)
    rows = []

    def add(key, name, terms, nbytes, stage="block", category="attention", **extra):
        rows.append(row(v, key, name, f(*terms), nbytes, stage=stage, category=category, **extra))

    def norm(prefix, label, layers, stage, category):
        add(f"{prefix}-input", f"{label} input (fp32" + (", a copy of the bf16 stream)" if stream == 2 else ")"),
            [(*layers, "s", "d")], FP32, stage, category)
        add(f"{prefix}-rms", f"{label} inverse RMS", [(*layers, "s")], FP32, stage, category)

    if setup.checkpoint == "block":
        add("block-input", "Layer input, kept by the checkpoint (enable_input_require_grads: it needs a gradient)",
            [("L", "s", "d")], stream, category="inputs", note="everything else in the layer is recomputed in backward")
    else:
        norm("norm1", "Attention norm (the layers after the first)", ("L_1",), "block", "norms")
        _adapter_inputs(add, setup, regime, chosen, _named("q_proj", "k_proj", "v_proj"), "d",
                        "Q/K/V projection input", "qkv-input", kept_already=False, first_layer_needs_gradient=False)
        _attention(add, v, shape, setup, regime, a)
        _adapter_inputs(add, setup, regime, chosen, _named("o_proj"), "d", "o_proj's input (the attention output)",
                        "o-input", kept_already=True)
        norm("norm2", "Feed-forward norm", ("L",), "block", "norms")
        _adapter_inputs(add, setup, regime, chosen, _named("gate_proj", "up_proj"), "d", "Feed-forward input",
                        "ffn-input", kept_already=False, category="ffn")
        wide = ("L", "s", "d_ff")
        add("w1-output", "gate_proj output, kept by SiLU", [wide], a, category="ffn")
        add("silu-output", "SiLU(gate), kept by ⊙", [wide], a, category="ffn")
        add("w3-output", "up_proj output, kept by ⊙", [wide], a, category="ffn")
        _adapter_inputs(add, setup, regime, chosen, _named("down_proj"), "d_ff", "SiLU(gate) ⊙ up, down_proj's input",
                        "product", kept_already=False, category="ffn")
        _adapter_outputs(add, regime, a, [(name, name, name in ("gate_proj", "up_proj", "down_proj"))
                                          for name in chosen])
        if regime == "autocast":
            _frozen_copies(add, shape, ("q_proj", "k_proj", "v_proj"))
    if int8_inputs:
        _int8_inputs(add, setup, regime, chosen, stream)
    norm("final-norm", "Final norm", (), "head", "output")
    add("log-probs", "Log-probabilities (fp32: the loss upcasts the logits)", [("s", "V")], FP32, "head", "output",
        note="the logits themselves are not kept")
    add("target-ids", "Shifted labels (int64), kept by NLL", [("s",)], INDEX, "head", "output",
        note="one sequence keeps the padded labels, s + 1 values: see the next row")
    add("target-pad", "The padding label of one sequence (int64), kept only at B = 1", [(1,)], INDEX, "head", "output",
        per_step=True, at_batch_one=True)
    add("nll-weight", "NLL total weight (fp32 scalar)", [(1,)], FP32, "head", "output", per_step=True)
    if regime == "autocast":
        add("head-copy", "The frozen head's bf16 copy, kept for its input's gradient (not cached)",
            [("V", "d")], 2, "head", "output", per_step=True, note="the same bytes for any batch")
    return rows


def _int8_inputs(add, setup, regime: str, chosen, stream: int) -> None:
    """Over an int8 base, the inputs bitsandbytes' int8 matmul keeps on its ctx (CPU:
    MatMul8bitFp's ctx.A; CUDA: MatMul8bitLt's ctx.tensors, bitsandbytes 0.50
    autograd/_functions.py) wherever a gradient flows through it: past saved-tensor hooks,
    so (non-reentrant) gradient checkpointing does not drop them. The attention norm's
    output (read by Q, K and V: not in the first layer, unless checkpointing's
    enable_input_require_grads makes it need a gradient), the feed-forward norm's (gate and
    up) and down_proj's input; o_proj's is SDPA's output, which SDPA keeps already, except
    under checkpointing. An input the adapters keep themselves (fp32, no dropout: the same
    tensor) is not kept twice."""
    checkpointed = setup.checkpoint == "block"
    rows = (("qkv", "Q/K/V projections' input", "d", ("q_proj", "k_proj", "v_proj")),
            ("o", "o_proj's input", "d", ("o_proj",)),
            ("ffn", "gate_proj and up_proj's input", "d", ("gate_proj", "up_proj")),
            ("down", "down_proj's input", "d_ff", ("down_proj",)))
    shared = regime == "fp32" and setup.lora_dropout == 0 and not checkpointed
    for key, label, width, readers in rows:
        if (key == "o" and not checkpointed) or (shared and set(readers) & set(chosen)):
            continue
        first = checkpointed or key != "qkv"
        add(f"int8-{key}-input", f"{label}, kept on the ctx of bitsandbytes' int8 matmul"
            + (" (checkpointing does not drop it)" if checkpointed else "")
            + ("" if first else ", in the layers after the first"), [("L" if first else "L_1", "s", width)], stream,
            category="ffn" if key in ("ffn", "down") else "attention")


def _attention(add, v, shape, setup, regime: str, a: int) -> None:
    """SDPA's inputs and output, and RoPE's tables: the same tensors as in full training."""
    heads, kv = ("L", "s", "d"), ("L", "s", "h_kv", "d_h")
    tables = 2 if regime == "bf16 base" else FP32  # cos and sin follow the stream's dtype
    add("rope-tables", "RoPE cos and sin" + (" (cast to bf16)" if tables == 2 else " (fp32)") + ", computed once per step",
        [(2, "s", "d_h")], tables, per_step=True)
    masked = _sliding_mask(shape)
    kernel = _sdpa_kernel(shape, setup, masked)
    if masked:
        add("q", "Q after RoPE", [heads], a)
        add("k", "K repeated to all h heads", [heads], a)
        add("v", "V repeated to all h heads", [heads], a)
        add("sliding-mask", "Sliding-window mask, kept by SDPA in every layer", [("L", "s", "s")], a, category="quadratic")
    else:
        grouped = kernel != "efficient"
        add("q", "Q after RoPE", [heads], a)
        add("k", "K after RoPE, not repeated (enable_gqa)" if grouped else "K after RoPE", [kv if grouped else heads], a)
        add("v", "V, not repeated (enable_gqa)" if grouped else "V", [kv if grouped else heads], a)
    add("flash-output", "SDPA output, kept by SDPA", [heads], a)
    for r in _kernel_rows(v, kernel):
        add(r.key, r.name, r.formula.terms, r.bytes_per_value, per_step=r.per_step, note=r.note)


def _named(*names: str) -> tuple[tuple[str, str], ...]:
    """Modules whose display name is the name peft targets them by."""
    return tuple((name, name) for name in names)


def _adapter_inputs(add, setup, regime: str, chosen, modules, width: str, label: str, key: str, kept_already: bool,
                    category: str = "attention", first_layer_needs_gradient: bool = True) -> None:
    """What the adapters of `modules` ((the name peft targets, the name a row shows) of
    each module that reads this input; those targeted count) keep of their shared input
    (s·width per sequence and layer): at dropout 0 in fp32 the input itself (once;
    nothing new where another op keeps it already), else per targeted module what A
    multiplies (the dropped input, its bf16 copy under autocast, or, with a bf16 base and
    no dropout, the input's fp32 copy) and its dropout mask (on the fp32 input), which
    dropout keeps only where the input needs a gradient: not in the first layer's Q, K
    and V."""
    mine = [shown for name, shown in modules if name in chosen]
    if not mine:
        return
    dropout = setup.lora_dropout > 0
    terms = [("L", "s", width)]
    if regime == "fp32" and not dropout:
        if not kept_already:
            add(key, f"{label} (fp32), kept by the adapters' A" if len(mine) > 1 else f"{label} (fp32), kept by A",
                terms, FP32, category=category)
        return
    for name in mine:
        key_name = name.replace(".", "-")
        if dropout:
            add(f"lora-dropout-mask-{key_name}", f"{name}'s LoRA dropout mask" + (
                " (bool)" if setup.device == "cuda" else " (fp32 noise)") + (
                "" if first_layer_needs_gradient else ", in the layers after the first"),
                [("L" if first_layer_needs_gradient else "L_1", "s", width)], _mask_bytes(setup, FP32),
                category=category)
        kept = 2 if regime == "autocast" else FP32
        what = ("its bf16 copy" if regime == "autocast" else "fp32") + (", after dropout" if dropout else "")
        if regime == "bf16 base" and not dropout:
            what = "its fp32 copy"
        add(f"lora-input-{key_name}", f"{name}'s adapter input ({what}), kept by A", terms, kept, category=category)


def _adapter_outputs(add, regime: str, a: int, modules) -> None:
    """Each targeted module's A output (r wide), kept by its B: (the name a row shows, its
    key's name, whether it is in the feed-forward part) of each."""
    for shown, key_name, ffn in modules:
        add(f"lora-a-output-{key_name}", f"{shown}'s A output (r wide), kept by B", [("L", "s", "r")],
            a if regime == "autocast" else FP32, category="ffn" if ffn else "attention")


def _frozen_copies(add, shape: ModelShape, first_layer_frozen: tuple[str, ...]) -> None:
    """Under bf16 autocast, each frozen base matrix's bf16 copy (2 bytes a value), made at
    every call (not cached) and kept by its matmul for the input's gradient: every layer's
    but the first layer's `first_layer_frozen` (those reading its first norm's output,
    which needs no gradient)."""
    linears = layer_linears(shape)
    every = sum(d_in * d_out for _, d_in, d_out in linears)
    first = sum(d_in * d_out for name, d_in, d_out in linears if name in first_layer_frozen)
    add("frozen-copies", "Frozen weights' bf16 copies, kept for their inputs' gradients (not cached)",
        [("L_1", every), (every - first,)], 2, per_step=True, note="the same bytes for any batch")


def _after_the_first(r) -> tuple:
    """A full-training row's terms for every layer but the first: L becomes L − 1."""
    return tuple(("L_1", *term[1:]) if term[0] == "L" else term for term in r.formula.terms)


_GPT2_SHOWN = ("c_attn", "attn.c_proj", "c_fc", "mlp.c_proj")
"""GPT-2's Conv1D layers as a row names them, in calc.lora.layer_linears' order (peft's
name c_proj is two of them)."""
_GPT2_FFN = ("c_fc", "mlp.c_proj")
_GPT2_DROPPED = ("token-ids", "position-ids", "head-input")
"""Rows of full training's GPT-2 table that LoRA's frozen weights do not keep: the
embeddings' ids, and the frozen (tied) head's input."""


def lora_gpt2_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    """The rows (per sequence) of a LoRA step of Hugging Face's GPT-2 code: full training's
    (calc.activations.hf), less what only the frozen weights' gradients need, plus the
    adapters' (measured: validation/results-lora.json). Without checkpointing the
    embedding's output needs no gradient, so its dropout keeps no mask and the first
    layer's attention LayerNorm keeps nothing; the frozen Conv1D layers keep no input
    (c_attn's and c_fc's, the attention output and the GELU output are kept only where an
    adapter, or SDPA, keeps them); with checkpointing enable_input_require_grads makes the
    embedding's output need one, and its dropout keeps its mask."""
    v = symbol_values(shape) | {"r": setup.lora_rank, "L_1": shape.layers - 1}
    regime = "fp32" if setup.dtype == "fp32" else "autocast"
    a = setup.bytes_per_value
    chosen = targets(setup.lora_targets, shape)
    rows = []

    def add(key, name, terms, nbytes, stage="block", category="attention", **extra):
        rows.append(row(v, key, name, f(*terms), nbytes, stage=stage, category=category, **extra))

    def adapters(modules, width, label, key, kept_already, category="attention", first=True):
        _adapter_inputs(add, setup, regime, chosen, modules, width, label, key, kept_already, category, first)

    checkpointed = setup.checkpoint == "block"
    for r in _gpt2_rows(shape, setup):
        if r.key in _GPT2_DROPPED or (r.key == "embedding-dropout" and not checkpointed):
            continue
        if r.key.startswith("norm1-"):  # the first layer's attention norm reads the frozen embedding's output
            add(r.key, r.name + ", in the layers after the first", _after_the_first(r), r.bytes_per_value,
                category=r.category)
        elif r.key == "qkv-input":
            adapters(_named("c_attn"), "d", "c_attn input", "qkv-input", kept_already=False, first=False)
        elif r.key == "attention-output":  # the frozen c_proj keeps nothing of it
            adapters((("c_proj", "attn.c_proj"),), "d", "Attention output, heads merged", "attention-output",
                     kept_already=False)
        elif r.key == "ffn-input":
            adapters(_named("c_fc"), "d", "c_fc input", "ffn-input", kept_already=False, category="ffn")
        elif r.key == "gelu-output":
            adapters((("c_proj", "mlp.c_proj"),), "d_ff", "Activation output", "gelu-output", kept_already=False,
                     category="ffn")
        else:
            if r.key == "final-norm-input" and not checkpointed:  # the blocks end: their adapters' outputs
                _adapter_outputs(add, regime, a, [(shown, shown.replace(".", "-"), shown in _GPT2_FFN)
                                                  for (name, _, _), shown in zip(layer_linears(shape), _GPT2_SHOWN)
                                                  if name in chosen])
                if regime == "autocast":
                    _frozen_copies(add, shape, ("c_attn",))
            rows.append(replace(r, name="SDPA output, kept by SDPA") if r.key == "flash-output" else r)
        if r.key == "flash-output":  # SDPA keeps its output already
            adapters((("c_proj", "attn.c_proj"),), "d", "Attention output", "attention-output", kept_already=True)
    if regime == "autocast":
        add("head-copy", "The frozen head's bf16 copy, kept for its input's gradient (not cached)",
            [("V", "d")], 2, "head", "output", per_step=True, note="the same bytes for any batch")
    return rows


_REFERENCE_DROPPED = ("token-ids", "norm1-normalised", "norm2-normalised", "final-norm-normalised", "head-input")
"""Rows of full training's reference table that LoRA's frozen weights do not keep: the
token ids, each norm's x·rms (kept by ·g for its gain's gradient) and the frozen head's
input."""


def lora_reference_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    """The rows (per sequence) of a LoRA step of the reference implementation, its linear
    layers as nn.Linear: full training's (calc.activations.autograd), less what only the
    frozen weights' gradients need, plus the adapters' (measured: validation/
    results-lora.json). Without checkpointing the frozen embedding's output needs no
    gradient, so the first layer's attention norm keeps nothing, and with attention written
    out its first layer keeps Q only for K's gradient (k_proj targeted), K only for Q's, V
    only for P's (q_proj or k_proj targeted; SDPA keeps all of them whatever); the linear
    layers' inputs are kept only by their adapters. Checkpointed, each block keeps its input
    (the checkpoint saves it, needed or not)."""
    v = symbol_values(shape) | {"r": setup.lora_rank, "L_1": shape.layers - 1}
    regime = {"fp32": "fp32", "bf16": "autocast", "bf16-master": "bf16 base"}[setup.dtype]
    a = setup.bytes_per_value
    chosen = targets(setup.lora_targets, shape)
    explicit = setup.attention == "explicit"
    first_layer_keeps = {"q": "k_proj" in chosen, "k": "q_proj" in chosen,
                         "v": bool({"q_proj", "k_proj"} & set(chosen)), "probabilities": True}
    if setup.device == "cuda" and setup.dtype == "bf16":  # P in fp32 for softmax, its bf16 copy for P·V
        first_layer_keeps |= {"probabilities": first_layer_keeps["v"], "probabilities-bf16": "v_proj" in chosen}
    kernel_keeps_output = setup.attention == "flash" and sdpa_kernel(shape, setup) == "efficient"
    rows = []

    def add(key, name, terms, nbytes, stage="block", category="attention", **extra):
        rows.append(row(v, key, name, f(*terms), nbytes, stage=stage, category=category, **extra))

    def adapters(modules, width, label, key, kept_already, category="attention", first=True):
        _adapter_inputs(add, setup, regime, chosen, modules, width, label, key, kept_already, category, first)

    def in_later_layers(r, label):
        add(r.key, f"{r.name}, {label}", _after_the_first(r), r.bytes_per_value, category=r.category, note=r.note)

    for r in autograd_table(shape, setup).rows:
        if r.key in _REFERENCE_DROPPED:
            continue
        if r.key.startswith("norm1-"):  # the first layer's attention norm reads the frozen embedding's output
            in_later_layers(r, "in the layers after the first")
        elif r.key == "qkv-input":
            adapters(_named("q_proj", "k_proj", "v_proj"), "d", "Q/K/V projection input", "qkv-input",
                     kept_already=False, first=False)
        elif r.key == "attention-output" and not kernel_keeps_output:  # a copy W_O alone kept
            adapters(_named("o_proj"), "d", "Attention output, heads concatenated", "attention-output",
                     kept_already=False)
        elif r.key == "ffn-input":
            adapters(_named("w1", "w3"), "d", "Feed-forward input", "ffn-input", kept_already=False, category="ffn")
        elif r.key == "product":  # the blocks end: their adapters' outputs, and autocast's frozen copies
            adapters(_named("w2"), "d_ff", "SiLU(W1 x) ⊙ W3 x, w2's input", "product", kept_already=False,
                     category="ffn")
            _adapter_outputs(add, regime, a, [(name, name, name in ("w1", "w2", "w3")) for name in chosen])
            if regime == "autocast":
                _frozen_copies(add, shape, ("q_proj", "k_proj", "v_proj"))
        elif explicit and setup.checkpoint == "none" and not first_layer_keeps.get(r.key, True):
            in_later_layers(r, "in the layers after the first (the first layer's other factor needs no gradient)")
        else:
            rows.append(r)
        if r.key == "attention-output" and kernel_keeps_output:  # the kernel keeps its output already
            adapters(_named("o_proj"), "d", "Attention output", "attention-output", kept_already=True)
    if regime == "autocast":
        add("head-copy", "The frozen head's bf16 copy, kept for its input's gradient (not cached)",
            [("V", "d")], 2, "head", "output", per_step=True, note="the same bytes for any batch")
    return rows
