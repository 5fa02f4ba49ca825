"""Fine-tuning measured: Hugging Face Llama-style code under peft's LoRA and QLoRA, and with
its bottom layers frozen, and the reference implementation under peft's LoRA, on CPU tensors
(and Llama 3 8B's LoRA at full size on fake tensors).

    python -m validation.lora           # write results-lora.json (about a minute)
    python -m validation.lora --check   # measure again; exit 1 if it differs

Each case builds the small Llama-style model (validation.run.HF_SMALL; GPT-2's small model
too, under LoRA in fp32 and bf16 autocast, with its own dropout and use_cache), in fp32 or with its
weights cast to bf16 (the base a reader loads with torch_dtype=bfloat16), wraps it with
peft's get_peft_model and a LoraConfig (rank, the target modules, LoRA dropout; peft's
defaults otherwise: its adapters in fp32 whatever the base, autocast_adapter_dtype), and
runs one forward pass (the loss included) under saved-tensor hooks, in fp32 or under CPU
bf16 autocast, then backward. With gradient checkpointing it calls
enable_input_require_grads, as transformers' and peft's guides do. LoRA over bitsandbytes'
int8 base, and the reference implementation (its linear layers as nn.Linear), likewise.
Llama 3 8B itself runs on fake tensors, forward only (measure_full_size). What it records:

- "activations": the bytes of every storage autograd saved, each once, the parameters and
  buffers apart, and autocast's cached copies of the adapters apart ("weight_copies");
- "trainable": the adapters' parameter count, and their bytes and the frozen ones';
- "adamw_8bit_bytes": the state bitsandbytes' AdamW8bit keeps for the adapters after a step;
- apart from the steps, AdamW8bit's state and a 4-bit weight's bytes (NF4 and FP4, with and
  without double quantisation) for single tensors of sizes around their blocks;
- "frozen": full fine-tuning with the token embedding and the first layers frozen
  (requires_grad off): the saved bytes, autocast's weight copies, the trainable count.

tests/engine/test_lora.py compares calc with every case. Needs torch, transformers and peft
(the validation extra), never calc.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import sys
import warnings
from pathlib import Path

import unittest.mock

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from validation.hf_models import as_on_real_tensors, hf_model
from validation.measure import _cast_module, _keep, _storage_key, is_weight_copy
from validation.record import write_or_check
from validation.run import HF_PRESETS, HF_SMALL, SMALL_SHAPES

RESULTS = Path(__file__).with_name("results-lora.json")
RANK = 4
TARGETS = {"all-linear": "all-linear", "q_proj,v_proj": ["q_proj", "v_proj"],
           "q_proj,k_proj,v_proj,o_proj": ["q_proj", "k_proj", "v_proj", "o_proj"],
           "c_attn": ["c_attn"], "c_attn,c_proj": ["c_attn", "c_proj"]}
"""The target sets measured, by the text calc's lora_targets field takes: peft's all-linear
(every linear layer but the head), its default for Llama (Q and V), the attention's four;
on GPT-2 its default (c_attn) and with both c_proj layers."""
LLAMA_TARGETS = ("all-linear", "q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj")

warnings.filterwarnings("ignore")


def measure_full_size(cfg: dict, batch: int, attention: str, checkpoint: str, dtype: str, targets: str,
                      dropout: float) -> dict:
    """measure()'s LoRA step at full size, on fake tensors (shapes and dtypes, no data), as
    validation.measure runs the Hugging Face models at full size: no backward (fake
    tensors hold no values to run it on) and no 8-bit optimizer; the adapters stay fp32,
    where peft's `.to()` of a module (which fake tensors cannot take) would leave them."""
    with FakeTensorMode(), as_on_real_tensors(), \
            unittest.mock.patch.object(torch.nn.init, "trunc_normal_", _keep), \
            unittest.mock.patch.object(torch.Tensor, "backward", lambda *args, **kwargs: None):
        return measure(cfg, batch, attention, checkpoint, dtype, targets, dropout, fake=True, rank=FULL_SIZE_RANK)


def measure(cfg: dict, batch: int, attention: str, checkpoint: str, dtype: str, targets: str, dropout: float,
            quant: tuple[str, bool] = ("nf4", True), prepared: bool = False, fake: bool = False,
            rank: int = RANK) -> dict:
    """One LoRA forward pass's saved bytes and the model's parameters, as the module says.
    dtype: "fp32"; "bf16" (CPU autocast over the fp32 base); "bf16-master" (the base cast
    to bf16, no autocast; the adapters fp32); "qlora" (that base, its blocks' linear layers in
    bitsandbytes' 4 bits: `quant`, its type and whether double quantisation; or its int8,
    `quant` ("int8", False)). `prepared`:
    peft's prepare_model_for_kbit_training on the quantized model, before the adapters, as
    QLoRA's recipes call it (it casts the rest of the base to fp32 and, with checkpointing,
    turns it on with enable_input_require_grads)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = hf_model(cfg, attention)
    if checkpoint == "block" and not prepared:
        model.gradient_checkpointing_enable()
    if dtype in ("bf16-master", "qlora"):
        _cast_module(model, torch.bfloat16)
    if dtype == "qlora":
        _quantize(model, *quant)
    if prepared:
        from peft import prepare_model_for_kbit_training
        if quant[0] != "int8":  # _quantize marks an int8 model
            model.is_loaded_in_4bit = True  # as transformers marks a model it loaded in 4 bits
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpoint == "block")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS[targets], lora_dropout=dropout)
    with unittest.mock.patch.object(torch.nn.Module, "to", lambda module, *args, **kwargs: module) if fake \
            else contextlib.nullcontext():
        model = get_peft_model(model, config)
    if checkpoint == "block":
        model.enable_input_require_grads()
    totals = _saved_in_a_step(model, cfg, batch, dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    quantized = {"constants": 0} if fake else _quantized_bytes(model)
    eight_bit = {} if fake else {"adamw_8bit_bytes": _adamw_8bit_bytes(trainable)}
    return {**totals, **eight_bit, "trainable": sum(p.numel() for p in trainable),
            "trainable_bytes": sum(p.numel() * p.element_size() for p in trainable),
            "frozen": sum(p.numel() for p in frozen), "frozen_bytes": sum(p.numel() * p.element_size() for p in frozen)
            + quantized["constants"], **({"quantized_bytes": quantized["total"]} if dtype == "qlora" else {})}


def _saved_in_a_step(model, cfg: dict, batch: int, dtype: str, loss_of=None) -> dict[str, int]:
    """Run one training forward pass (the loss included) of `batch` random sequences under
    saved-tensor hooks, in fp32 or under CPU bf16 autocast (dtype "bf16"), then backward:
    the bytes of every storage autograd saved, each once, the parameters and buffers apart,
    and autocast's cached weight copies apart ("weight_copies"). `loss_of(ids)`: the
    model's loss (Hugging Face's, with the ids as labels, when not given)."""
    model.train()
    ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    loss_of = loss_of or (lambda ids: model(input_ids=ids, labels=ids).loss)
    fixed = {_storage_key(p) for p in model.parameters()} | {_storage_key(b) for b in model.buffers()}
    seen: set = set()
    totals = {"activations": 0, "weight_copies": 0}

    def pack(t: torch.Tensor):
        key = _storage_key(t)
        if key not in seen and key not in fixed:
            seen.add(key)
            totals["weight_copies" if is_weight_copy(t) else "activations"] += t.untyped_storage().nbytes()
        return t

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        loss = loss_of(ids)
    for t in _held_by_functions(loss):  # what a custom autograd Function keeps on its ctx, past the hooks
        pack(t)
    loss.backward()  # the graph measured is one backward runs
    return totals


def _held_by_functions(loss: torch.Tensor) -> list[torch.Tensor]:
    """The tensors bitsandbytes' autograd Functions keep as attributes of their ctx, which
    saved-tensor hooks do not see (`ctx.tensors`; the int8 layers' `ctx.A`): MatMul4Bit
    keeps only its weight there, so a 4-bit step keeps nothing more; MatMul8bitFp keeps the
    int8 layer's input, even under checkpointing. A custom Function's
    ctx is its node in the graph, found by walking back from the loss."""
    held, nodes, stack = [], set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        held += [t for t in (*(getattr(node, "tensors", None) or ()), getattr(node, "A", None))
                 if isinstance(t, torch.Tensor)]
        stack += [following for following, _ in node.next_functions]
    return held


def measure_reference(cfg: dict, batch: int, attention: str, checkpoint: str, dtype: str, targets: str,
                      dropout: float) -> dict:
    """measure()'s LoRA step on the reference implementation (validation/reference_model.py),
    its linear layers as torch's nn.Linear (peft wraps only torch's layer types) sharing
    their weights; dtype "fp32", "bf16" (CPU autocast) or "bf16-master" (the model cast to
    bf16, the adapters fp32). Its checkpointing is per block, non-reentrant."""
    from peft import LoraConfig, get_peft_model

    from validation.reference_model import Transformer

    torch.manual_seed(0)
    model = _as_torch_linears(Transformer(cfg))
    if dtype == "bf16-master":
        _cast_module(model, torch.bfloat16)
    get_peft_model(model, LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules=REFERENCE_TARGETS[targets],
                                     lora_dropout=dropout))  # adds the adapters to `model` and freezes the rest
    labels = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    totals = _saved_in_a_step(model, cfg, batch, dtype,
                              lambda ids: model(ids, labels, attention=attention, checkpoint=checkpoint))
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    return {**totals, "trainable": sum(p.numel() for p in trainable),
            "trainable_bytes": sum(p.numel() * p.element_size() for p in trainable),
            "frozen": sum(p.numel() for p in frozen), "frozen_bytes": sum(p.numel() * p.element_size() for p in frozen)}


def _as_torch_linears(model):
    """The reference model with each of its Linear layers replaced by torch's nn.Linear
    holding the same parameters (the same F.linear call)."""
    from validation.reference_model import Linear

    for module in list(model.modules()):
        for attribute, child in list(module.named_children()):
            if isinstance(child, Linear):
                layer = torch.nn.Linear(child.weight.shape[1], child.weight.shape[0], bias=child.bias is not None)
                layer.weight = child.weight
                if child.bias is not None:
                    layer.bias = child.bias
                setattr(module, attribute, layer)
    return model


REFERENCE_TARGETS = {"all-linear": "all-linear", "q_proj,v_proj": ["q_proj", "v_proj"], "k_proj,w2": ["k_proj", "w2"],
                     "v_proj": ["v_proj"]}
"""The target sets measured on the reference implementation: every linear layer, Q and V,
and two that leave the first layer's Q or K needing no gradient (attention written out
then keeps less there)."""


FULL_SIZE_RANK = 16


def full_size_cases():
    """Llama 3 8B at its 8,192 tokens, one sequence, SDPA: with and without checkpointing, in
    each precision, for two target sets, with and without LoRA dropout (rank 16)."""
    yield from itertools.product(("none", "block"), ("fp32", "bf16", "bf16-master"), ("all-linear", "q_proj,v_proj"),
                                 (0.0, 0.1))


def reference_cases():
    """The reference implementation's CS336 shape (and with grouped-query attention, and a
    tied head) at one and three sequences, attention written out and SDPA, with and without
    checkpointing, in fp32, under bf16 autocast and cast to bf16, for every target set
    (with and without LoRA dropout for the first two)."""
    for shape, batch, attention, checkpoint, dtype in itertools.product(
            ("small-cs336", "small-gqa", "small-cs336-tied"), (1, 3), ("explicit", "flash"), ("none", "block"),
            ("fp32", "bf16", "bf16-master")):
        if shape == "small-cs336-tied" and batch == 3:
            continue
        for targets, dropout in (("all-linear", 0.0), ("all-linear", 0.1), ("q_proj,v_proj", 0.0),
                                 ("q_proj,v_proj", 0.1), ("k_proj,w2", 0.0), ("v_proj", 0.0)):
            yield shape, batch, attention, checkpoint, dtype, targets, dropout


REFERENCE_SHAPES = {**{name: SMALL_SHAPES[name] for name in ("small-cs336", "small-gqa")},
                    "small-cs336-tied": dict(SMALL_SHAPES["small-cs336"], tied=True)}


def measure_frozen(cfg: dict, batch: int, checkpoint: str, dtype: str, attention: str, freeze_embeddings: bool,
                   frozen_blocks: int) -> dict:
    """Full fine-tuning with the token embedding (`freeze_embeddings`) and the first
    `frozen_blocks` decoder layers frozen (requires_grad False), in fp32 or under CPU bf16
    autocast: the saved bytes (autocast's cached weight copies apart) and the trainable
    parameters, which are those that get a gradient."""
    torch.manual_seed(0)
    model = hf_model(cfg, attention)
    if checkpoint == "block":
        model.gradient_checkpointing_enable()
    model.model.embed_tokens.weight.requires_grad_(not freeze_embeddings)
    for layer in model.model.layers[:frozen_blocks]:
        layer.requires_grad_(False)
    totals = _saved_in_a_step(model, cfg, batch, dtype)
    return {**totals, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "with_gradients": sum(p.numel() for p in model.parameters() if p.grad is not None)}


def frozen_cases():
    """The small Llama shape at one and three sequences, with and without checkpointing, in
    fp32 and under bf16 autocast, SDPA and eager attention: the embedding frozen alone, with
    the first layer, with both layers."""
    yield from itertools.product((1, 3), ("none", "block"), ("fp32", "bf16"), ("flash", "explicit"),
                                 ((True, 0), (True, 1), (True, 2)))


def _adamw_8bit_bytes(parameters, paged: bool = False) -> int:
    """The bytes of bitsandbytes' AdamW8bit's state (`paged`: PagedAdamW8bit's, which on the
    CPU falls back to ordinary buffers) over `parameters` after one step (each storage
    once: its 8-bit maps are shared)."""
    import bitsandbytes as bnb

    optimizer = (bnb.optim.PagedAdamW8bit if paged else bnb.optim.AdamW8bit)(parameters, lr=1e-3)
    optimizer.step()  # the state is made at the first step
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)}
    return sum(storages.values())


def _quantize(model, quant_type: str = "nf4", double_quant: bool = True) -> None:
    """Every linear layer of the blocks as bitsandbytes' Linear4bit, as transformers'
    BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
    bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=torch.bfloat16) loads
    it: bf16 compute; the head stays bf16. quant_type "int8": as Linear8bitLt, as
    BitsAndBytesConfig(load_in_8bit=True) loads it (int8 weights, llm_int8_threshold 6.0),
    the model marked as transformers marks it, so that peft wraps it in its 8-bit layer."""
    import bitsandbytes as bnb

    if quant_type == "int8":
        model.is_loaded_in_8bit = True
    for name, module in list(model.named_modules()):
        for attribute, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and not f"{name}.{attribute}".endswith("lm_head"):
                if quant_type == "int8":
                    layer = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                                has_fp16_weights=False, threshold=6.0)
                    layer.weight = bnb.nn.Int8Params(child.weight.data, requires_grad=False,
                                                     has_fp16_weights=False).to("cpu")  # quantized as it moves
                    setattr(module, attribute, layer)
                    continue
                layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                          compute_dtype=torch.bfloat16, quant_type=quant_type,
                                          compress_statistics=double_quant)
                layer.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type=quant_type,
                                                 compress_statistics=double_quant).to("cpu")  # quantized as it moves
                setattr(module, attribute, layer)


def _four_bit_bytes(values: int, quant_type: str, double_quant: bool) -> int:
    """The bytes of one bf16 weight of `values` values in bitsandbytes' 4 bits: the packed
    values and their quantisation state."""
    import bitsandbytes as bnb

    weight = bnb.nn.Params4bit(torch.randn(values, dtype=torch.bfloat16), requires_grad=False, quant_type=quant_type,
                               compress_statistics=double_quant).to("cpu")
    return _quantized_bytes(torch.nn.ParameterList([weight]))["total"]


def _quantized_bytes(model) -> dict[str, int]:
    """The quantized weights' bytes ("total": the packed values and their quantisation state) and
    the quantisation state's alone ("constants": tensors that are not parameters): the
    4-bit weights' or the int8 ones' (their row scales, on each layer's state once it has run)."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    if layers:
        scales = sum(m.state.SCB.untyped_storage().nbytes() for m in layers)
        return {"total": sum(m.weight.untyped_storage().nbytes() for m in layers) + scales, "constants": scales}
    states = [p.quant_state for p in model.parameters() if getattr(p, "quant_state", None) is not None]
    packed = sum(p.untyped_storage().nbytes() for p in model.parameters() if getattr(p, "quant_state", None) is not None)
    constants = 0
    for state in states:
        for tensor in (state.absmax, state.code, state.offset, *((state.state2.absmax, state.state2.code)
                                                                if state.state2 is not None else ())):
            if tensor is not None:
                constants += tensor.untyped_storage().nbytes()
    return {"total": packed + constants, "constants": constants}


def cases():
    """The small Llama shape at one and three sequences, SDPA attention, with and without
    checkpointing, in each precision, for each target set, with and without LoRA dropout;
    then QLoRA (dtype "qlora": the bf16 base's linear layers in 4-bit NF4, double
    quantisation) the same way, for two target sets; then QLoRA's other 4-bit settings (FP4,
    without double quantisation) at one sequence; then QLoRA prepared by peft's
    prepare_model_for_kbit_training, for two target sets; then LoRA over an int8 base
    (quant_type "int8") for two target sets, unprepared and prepared."""
    nf4 = (("nf4", True),)
    yield from itertools.product(("small-hf-llama",), (1, 3), ("flash",), ("none", "block"),
                                 ("fp32", "bf16", "bf16-master"), LLAMA_TARGETS, (0.0, 0.1), nf4, (False,))
    yield from itertools.product(("small-hf-llama",), (1, 3), ("flash",), ("none", "block"), ("qlora",),
                                 ("all-linear", "q_proj,v_proj"), (0.0, 0.1), nf4, (False,))
    yield from itertools.product(("small-hf-llama",), (1,), ("flash",), ("none", "block"), ("qlora",),
                                 ("all-linear",), (0.0,), (("nf4", False), ("fp4", True), ("fp4", False)), (False,))
    yield from itertools.product(("small-hf-llama",), (1, 3), ("flash",), ("none", "block"), ("qlora",),
                                 ("all-linear", "q_proj,v_proj"), (0.0, 0.1), nf4, (True,))
    yield from itertools.product(("small-hf-llama",), (1, 3), ("flash",), ("none", "block"), ("qlora",),
                                 ("all-linear", "q_proj,v_proj"), (0.0, 0.1), (("int8", False),), (False, True))


def gpt2_cases():
    """GPT-2's small shape at one and three sequences, SDPA attention, with and without
    checkpointing, in fp32 and under bf16 autocast, for three target sets, with and without
    LoRA dropout, with the model's own dropout 0 and 0.1 (GPT-2's published attn_pdrop,
    resid_pdrop and embd_pdrop), use_cache off and on (GPT-2's default)."""
    yield from itertools.product((1, 3), ("none", "block"), ("fp32", "bf16"), ("c_attn", "c_attn,c_proj", "all-linear"),
                                 (0.0, 0.1), (0.0, 0.1), (False, True))


def run(log=sys.stderr) -> dict:
    logging.disable(logging.WARNING)  # bitsandbytes, imported by peft, logs a missing optional kernel
    import peft

    steps = []
    for shape, batch, attention, checkpoint, dtype, targets, dropout, quant, prepared in cases():
        measured = measure(HF_SMALL[shape], batch, attention, checkpoint, dtype, targets, dropout, quant, prepared)
        four_bit = {"quant_type": quant[0], "double_quant": quant[1], "prepared": prepared} if dtype == "qlora" else {}
        steps.append({"shape": shape, "batch": batch, "attention": attention, "checkpoint": checkpoint,
                      "dtype": dtype, "rank": RANK, "targets": targets, "dropout": dropout, **four_bit, **measured})
        print(steps[-1], file=log)
    for batch, checkpoint, dtype, targets, dropout, model_dropout, cache in gpt2_cases():
        cfg = dict(HF_SMALL["small-hf-gpt2"], dropout=model_dropout, use_cache=cache)
        measured = measure(cfg, batch, "flash", checkpoint, dtype, targets, dropout)
        steps.append({"shape": "small-hf-gpt2", "model_dropout": model_dropout, "use_cache": cache, "batch": batch,
                      "attention": "flash", "checkpoint": checkpoint, "dtype": dtype, "rank": RANK,
                      "targets": targets, "dropout": dropout, **measured})
        print(steps[-1], file=log)
    for checkpoint, dtype, targets, dropout in full_size_cases():
        measured = measure_full_size(HF_PRESETS["llama-3-8b"], 1, "flash", checkpoint, dtype, targets, dropout)
        steps.append({"shape": "llama-3-8b-hf", "tensors": "fake", "batch": 1, "attention": "flash",
                      "checkpoint": checkpoint, "dtype": dtype, "rank": FULL_SIZE_RANK, "targets": targets,
                      "dropout": dropout, **measured})
        print(steps[-1], file=log)
    for shape, batch, attention, checkpoint, dtype, targets, dropout in reference_cases():
        measured = measure_reference(REFERENCE_SHAPES[shape], batch, attention, checkpoint, dtype, targets, dropout)
        steps.append({"shape": shape, "implementation": "reference", "batch": batch, "attention": attention,
                      "checkpoint": checkpoint, "dtype": dtype, "rank": RANK, "targets": targets, "dropout": dropout,
                      **measured})
        print(steps[-1], file=log)
    frozen = []
    for batch, checkpoint, dtype, attention, (embeddings, blocks) in frozen_cases():
        measured = measure_frozen(HF_SMALL["small-hf-llama"], batch, checkpoint, dtype, attention, embeddings, blocks)
        frozen.append({"shape": "small-hf-llama", "batch": batch, "attention": attention, "checkpoint": checkpoint,
                       "dtype": dtype, "freeze_embeddings": embeddings, "frozen_blocks": blocks, **measured})
        print(frozen[-1], file=log)
    sizes = ADAMW_8BIT_SIZES
    return {"torch": torch.__version__.split("+")[0], "peft": peft.__version__, "device": "cpu",
            "shapes": {**{name: HF_SMALL[name] for name in ("small-hf-llama", "small-hf-gpt2")},
                       "llama-3-8b-hf": HF_PRESETS["llama-3-8b"],
                       **{name: dict(shape, implementation="reference") for name, shape in REFERENCE_SHAPES.items()}},
            "steps": steps,
            "frozen": frozen,
            "adamw_8bit": {"sizes": list(sizes), "each": [_adamw_8bit_bytes([_tensor(n)]) for n in sizes],
                           "together": _adamw_8bit_bytes([_tensor(n) for n in sizes]),
                           "paged_together": _adamw_8bit_bytes([_tensor(n) for n in sizes], paged=True)},
            "four_bit": {"sizes": list(FOUR_BIT_SIZES),
                         **{f"{kind}{'-double' if double else ''}": [_four_bit_bytes(n, kind, double)
                                                                     for n in FOUR_BIT_SIZES]
                            for kind in ("nf4", "fp4") for double in (True, False)}}}


ADAMW_8BIT_SIZES = (100, 4095, 4096, 8192, 12293, 65536, 65537, 99999, 100000)
"""Tensor sizes (values) whose AdamW8bit state is measured alone and all together: around
its 4,096-value threshold for 8-bit state and its 256-value blocks."""


FOUR_BIT_SIZES = (1, 63, 64, 65, 4096, 16384, 16385, 65537)
"""Weight sizes (values) whose 4-bit bytes are measured in each type, with and without
double quantisation: around the 64-value blocks and the 256 blocks of a nested scale."""


def _tensor(values: int) -> torch.nn.Parameter:
    parameter = torch.nn.Parameter(torch.randn(values))
    parameter.grad = torch.randn(values)
    return parameter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed results-lora.json")
    args = parser.parse_args(argv)
    return write_or_check(RESULTS, run(), "validation.lora", args.check)


if __name__ == "__main__":
    sys.exit(main())
