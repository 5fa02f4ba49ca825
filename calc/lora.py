"""LoRA fine-tuning (`finetune lora`): which linear layers get adapters, and their sizes.

peft's LoRA (peft 0.21, `peft/tuners/lora/layer.py`, `Linear`) leaves each targeted
linear layer's weight W frozen and adds beside it a rank-r path: the input, through
dropout (nn.Identity at dropout 0), times A (r × d_in), times B (d_out × r), times
α / r, added to W x. Only A and B train: r·(d_in + d_out) values a targeted layer, kept in
fp32 whatever the base's dtype (get_peft_model's autocast_adapter_dtype), and peft casts
the layer's input to their dtype first. Every other parameter (the embedding, the norms,
the head) is frozen.

QLoRA (`finetune qlora`) is LoRA over a base whose blocks' linear layers bitsandbytes
stores in 4 bits (transformers' BitsAndBytesConfig(load_in_4bit=True,
bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=bf16),
the QLoRA paper's setting, by default; `quant_type` fp4 and `double_quant` off are the
config's other choices; every linear layer but the head, whatever the adapters target),
the rest of the base in bf16 (torch_dtype=bfloat16). bitsandbytes' MatMul4Bit keeps the
packed weight and nothing of the input for backward (bitsandbytes 0.50,
autograd/_functions.py `MatMul4Bit.forward`: ctx.tensors = (None, B)), so autograd keeps
what LoRA over a bf16 base keeps: measured equal on CPU tensors (validation/lora.py). It
dequantizes each weight to bf16 for its matmul, forward and backward: one such copy is
alive at a time (calc.peak counts the largest in its bounds). With peft's
prepare_model_for_kbit_training (`prepare_kbit`), which casts the rest of the base (the
embeddings, norms and head) to fp32, bitsandbytes' layers return fp32 and the model
computes in fp32 around its 4-bit matmuls: autograd keeps what LoRA over an fp32 base keeps
(measured equal, activation_setup).

`quant_type` int8 is LoRA over bitsandbytes' 8-bit base instead (BitsAndBytesConfig(
load_in_8bit=True), LLM.int8(): `Linear8bitLt` with int8 weights and one fp32 scale for each
output row, int8_bytes). Its autograd Functions keep each int8 layer's input on their ctx
(CPU: `MatMul8bitFp`, ctx.A; CUDA: `MatMul8bitLt`, ctx.tensors), out of reach of saved-tensor
hooks and so of non-reentrant gradient checkpointing (keeps_int8_inputs; calc.activations.lora
has the rows).

Modelled for Hugging Face's Llama-style code (Llama, Mistral, Qwen2), whose linear
layers are named q_proj, k_proj, v_proj, o_proj (attention) and gate_proj, up_proj,
down_proj (feed-forward), for its GPT-2 code (LoRA alone, in fp32 or under bf16
autocast), whose Conv1D layers are c_attn (Q, K and V in one), c_proj (the attention's
output projection and the MLP's second layer: peft matches both by the name) and c_fc,
and for the reference implementation (LoRA alone; its CS336 shape: RMSNorm, SwiGLU,
RoPE), whose linear layers are q_proj, k_proj, v_proj, o_proj and w1, w2, w3, written as
torch's nn.Linear (peft wraps only torch's layer types: a model with a Linear class of its
own must register a LoRA layer for it); "all-linear" is peft's name for all of a model's
(the head apart).
"""

from __future__ import annotations

from calc.errors import FieldError, echo
from calc.shape import ModelShape, is_gpt2

LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of one Llama-style decoder layer, by the name peft targets them by."""
GPT2_MODULES = ("c_attn", "c_proj", "c_fc")
"""GPT-2's Conv1D layers by the names peft targets them by (c_proj names two in each layer)."""
REFERENCE_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3")
"""The reference implementation's linear layers (validation/reference_model.py), by the
names peft targets them by, in the order it registers them (it runs w3 before w2)."""
_REFERENCE_ONLY = tuple(name for name in REFERENCE_MODULES if name not in LLAMA_MODULES)
"""The reference implementation's names that Llama-style code does not use: w1, w2, w3."""
ALL_LINEAR = "all-linear"
FINETUNES = ("full", "lora", "qlora")
"""full: every parameter trains (pretraining, full fine-tuning); lora: peft's LoRA; qlora:
peft's LoRA over a base quantized by bitsandbytes (4-bit NF4 by default)."""
QUANT_TYPES = ("nf4", "fp4", "int8")
"""bitsandbytes' 4-bit data types (bnb_4bit_quant_type): NormalFloat4 and a 4-bit float,
both the same bytes (two values a byte, and a 16-entry fp32 code); or its 8-bit
LLM.int8() (load_in_8bit)."""
INT8_THRESHOLD = 6.0
"""BitsAndBytesConfig's llm_int8_threshold: on CUDA an int8 layer's input columns holding a
value of this magnitude or more are multiplied in 16 bits, and kept for backward."""
FOUR_BIT_BLOCK, NESTED_BLOCK = 64, 256
"""bitsandbytes' 4-bit blocks: one scale (absmax) for every 64 values; double quantisation
stores the scales in 8 bits, with one fp32 scale for every 256 of them."""
EIGHT_BIT_OPTIMIZERS = ("adamw-8bit", "paged-adamw-8bit")
"""bitsandbytes' AdamW8bit and PagedAdamW8bit: the same state, the second's larger
tensors in unified memory."""


def trains_adapters(setup) -> bool:
    """Whether peft's LoRA adapters are what trains (LoRA or QLoRA)."""
    return setup.finetune in ("lora", "qlora")


def four_bit_bytes(values: int, double_quant: bool = True) -> int:
    """Bytes of one weight of `values` values as bitsandbytes 0.50 stores it in 4 bits, NF4
    or FP4 alike (bitsandbytes/functional.py `quantize_4bit`, measured on CPU Params4bit):
    two values a byte and the 4-bit code (16 fp32); with double quantisation one uint8
    scale a block of 64 values, the nested quantisation's offset (one fp32), its scales
    (one fp32 a block of 256 scales) and its 8-bit code (256 fp32); without, one fp32 scale
    a block of 64. Each tensor keeps its own."""
    blocks = -(-values // FOUR_BIT_BLOCK)
    packed = -(-values // 2) + 16 * 4
    if not double_quant:
        return packed + 4 * blocks
    return packed + blocks + 4 + 4 * -(-blocks // NESTED_BLOCK) + 256 * 4


EIGHT_BIT_MIN, EIGHT_BIT_BLOCK, EIGHT_BIT_MAP = 4096, 256, 256 * 4
"""bitsandbytes' AdamW8bit (bitsandbytes 0.50, optim/optimizer.py `Optimizer8bit`): a tensor of
at least 4,096 values keeps each moment in 8 bits, with an fp32 scale a block of 256 values;
a smaller one keeps both in fp32; the two 8-bit maps (256 fp32 each) are the optimizer's,
shared by every tensor."""


PAGED_MIN = 100_000
"""PagedAdamW8bit on a GPU puts a tensor's two 8-bit moments in unified memory
(bitsandbytes 0.50.2 functional.py:91 `get_paged`: cudaMallocManaged, outside PyTorch's
allocator) from 100,000 values on (optim/optimizer.py:383 `get_state_buffer`:
`p.numel() < 1e5` stays with the allocator); its block scales and the smaller tensors' state stay with the allocator. On the
CPU it falls back to AdamW8bit's buffers."""


def adamw_8bit_bytes(tensors: tuple[int, ...], paged: bool = False) -> int:
    """Bytes of AdamW8bit's state over tensors of these values that PyTorch's allocator holds
    (measured on CPU tensors: validation/results-lora.json "adamw_8bit"); `paged`: the
    PagedAdamW8bit's on a GPU, whose paged moments (paged_bytes) are not among them."""
    eight_bit = [n for n in tensors if n >= EIGHT_BIT_MIN]
    return (sum(2 * n + 2 * 4 * -(-n // EIGHT_BIT_BLOCK) for n in eight_bit)
            + sum(8 * n for n in tensors if n < EIGHT_BIT_MIN) + (2 * EIGHT_BIT_MAP if eight_bit else 0)
            - (paged_bytes(tensors) if paged else 0))


def paged_bytes(tensors: tuple[int, ...]) -> int:
    """Bytes of PagedAdamW8bit's moments in unified memory on a GPU, over tensors of these
    values: two uint8 moments of each tensor of at least PAGED_MIN values."""
    return sum(2 * n for n in tensors if n >= PAGED_MIN)


def int8_bytes(d_in: int, d_out: int) -> int:
    """Bytes of one d_in × d_out weight as bitsandbytes 0.50 stores it in 8 bits
    (`Int8Params`, functional.py `int8_vectorwise_quant`; measured on CPU Linear8bitLt): an
    int8 a value and one fp32 scale an output row (SCB)."""
    return d_in * d_out + 4 * d_out


def quantized_values(shape: ModelShape) -> int:
    """The values of the base's quantized weights under QLoRA: every linear layer of every block."""
    return shape.layers * sum(d_in * d_out for _, d_in, d_out in layer_linears(shape))


def quantized_bytes(shape: ModelShape, setup) -> int:
    """Bytes of the base's quantized weights under QLoRA (setup.quant_type), their scales
    and codes included."""
    if setup.quant_type == "int8":
        return shape.layers * sum(int8_bytes(d_in, d_out) for _, d_in, d_out in layer_linears(shape))
    return shape.layers * sum(four_bit_bytes(d_in * d_out, setup.double_quant)
                              for _, d_in, d_out in layer_linears(shape))


def quant_label(setup) -> str:
    """The quantized base's data type, as a row or a column says it: "4-bit NF4", "8-bit int8"."""
    return "8-bit int8" if setup.quant_type == "int8" else f"4-bit {setup.quant_type.upper()}"


def parse_targets(text: str) -> str:
    """The lora_targets field's value: "all-linear", or module names (Llama-style code's or
    GPT-2's) separated by commas, each once, in the layer's order; FieldError naming the
    field for anything else (calc.lora.check: names of the other family's code)."""
    text = str(text).strip()
    if text == ALL_LINEAR:
        return text
    known = LLAMA_MODULES + GPT2_MODULES + _REFERENCE_ONLY
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise FieldError("lora_targets", f"lora_targets must be {ALL_LINEAR} or, separated by commas, some of "
                                         f"{', '.join(LLAMA_MODULES)} (Llama-style code), {', '.join(GPT2_MODULES)} "
                                         f"(GPT-2) or {', '.join(_REFERENCE_ONLY)} (the reference implementation's "
                                         f"feed-forward), not {echo(text)}")
    return ",".join(name for name in known if name in names)


def family_modules(shape: ModelShape) -> tuple[str, ...]:
    """The names peft targets this model's linear layers by."""
    if shape.implementation == "reference":
        return REFERENCE_MODULES
    return GPT2_MODULES if is_gpt2(shape) else LLAMA_MODULES


def targets(text: str, shape: ModelShape) -> tuple[str, ...]:
    """The targeted module names of one layer, in its order."""
    return family_modules(shape) if text == ALL_LINEAR else tuple(text.split(","))


def layer_linears(shape: ModelShape) -> tuple[tuple[str, int, int], ...]:
    """(the name peft targets it by, d_in, d_out) of each linear layer of one decoder layer,
    in the order it registers its parameters: Llama-style code's seven, GPT-2's four
    Conv1D layers (two named c_proj), or the reference implementation's seven."""
    d = shape.d_model
    if is_gpt2(shape):
        return (("c_attn", d, 3 * d), ("c_proj", d, d), ("c_fc", d, shape.d_ff), ("c_proj", shape.d_ff, d))
    q, kv = shape.heads * shape.d_head, shape.kv_heads * shape.d_head
    attention = (("q_proj", d, q), ("k_proj", d, kv), ("v_proj", d, kv), ("o_proj", q, d))
    if shape.implementation == "reference":
        return (*attention, ("w1", d, shape.d_ff), ("w2", shape.d_ff, d), ("w3", d, shape.d_ff))
    return (*attention, ("gate_proj", d, shape.d_ff), ("up_proj", d, shape.d_ff), ("down_proj", shape.d_ff, d))


def targeted_linears(shape: ModelShape, setup) -> tuple[tuple[str, int, int], ...]:
    """The linear layers of one decoder layer that get adapters, in their order."""
    chosen = targets(setup.lora_targets, shape)
    return tuple(linear for linear in layer_linears(shape) if linear[0] in chosen)


def adapters_per_layer(shape: ModelShape, setup) -> int:
    """The adapters' values in one layer: r·(d_in + d_out) for each targeted module."""
    return sum(setup.lora_rank * (d_in + d_out) for _, d_in, d_out in targeted_linears(shape, setup))


def adapter_count(shape: ModelShape, setup) -> int:
    """The trainable parameters: every layer's adapters."""
    return shape.layers * adapters_per_layer(shape, setup)


def adapter_tensors(shape: ModelShape, setup) -> tuple[int, ...]:
    """The values in each adapter tensor (A, then B, for each targeted module of each
    layer), in the order the optimizer steps them."""
    one = tuple(setup.lora_rank * size for _, d_in, d_out in targeted_linears(shape, setup) for size in (d_in, d_out))
    return one * shape.layers


def keeps_int8_inputs(setup) -> bool:
    """Whether bitsandbytes' int8 matmuls keep their layers' inputs past saved-tensor hooks:
    over an int8 base, unless checkpointing is PyTorch's reentrant kind, whose forward pass
    builds no graph. prepare_model_for_kbit_training turns that kind on: peft 0.21 passes
    gradient_checkpointing_kwargs={} (utils/other.py), so transformers 5.23 sets no
    use_reentrant and torch.utils.checkpoint takes its default, reentrant (measured: a
    prepared int8 step under checkpointing keeps what LoRA over the fp32 base keeps)."""
    return (setup.finetune == "qlora" and setup.quant_type == "int8"
            and not (setup.prepare_kbit and setup.checkpoint == "block"))


def activation_setup(setup):
    """The setup whose saved tensors a LoRA step keeps: QLoRA over a base that
    prepare_model_for_kbit_training cast to fp32 keeps LoRA's over the fp32 base (measured
    equal on CPU tensors: validation/results-lora.json, the prepared steps)."""
    return setup.replace(finetune="lora", dtype="fp32", prepare_kbit=False) if setup.upcast_base else setup


def check(shape: ModelShape, setup) -> None:
    """FieldError naming the field where calc does not model this LoRA run's code
    (calc.layout.split.check_layout: its layout)."""
    if setup.prepare_kbit and setup.finetune != "qlora":
        raise FieldError("prepare_kbit", "prepare_model_for_kbit_training prepares a quantized base: choose finetune "
                                         "qlora, or prepare_kbit false")
    if setup.finetune == "full":
        if setup.optimizer in EIGHT_BIT_OPTIMIZERS and setup.dtype == "bf16-master":
            raise FieldError("optimizer", "bitsandbytes' 8-bit AdamW updates the weights it is given and keeps no "
                                          "fp32 master copy: choose dtype fp32 or bf16 (autocast), or optimizer adamw")
        return
    if setup.accounting != "autograd":
        raise FieldError("accounting", "LoRA is counted by what autograd keeps: choose accounting autograd")
    gpt2, reference = is_gpt2(shape), shape.implementation == "reference"
    if reference:
        _check_reference(shape, setup)
    elif shape.implementation != "hf" or not (gpt2 or shape.ffn == "swiglu"):
        raise FieldError("finetune", "LoRA is modelled for Hugging Face's code (Llama, Mistral, Qwen2, GPT-2) and the "
                                     "reference implementation so far: choose implementation hf or reference")
    elif setup.attention != "flash":
        raise FieldError("attention", "LoRA is measured with SDPA attention (flash), transformers' default: choose "
                                      "flash")
    if setup.finetune == "qlora" and gpt2:
        raise FieldError("finetune", "QLoRA is modelled for Llama-style code so far: choose finetune lora for GPT-2")
    if setup.finetune == "qlora" and setup.dtype != "bf16-master":
        raise FieldError("dtype", "QLoRA computes in bf16 over a bf16 base (bnb_4bit_compute_dtype, torch_dtype "
                                  "bfloat16): choose bf16-master")
    if gpt2 and setup.dtype == "bf16-master":
        raise FieldError("dtype", "LoRA on GPT-2's code is measured in fp32 and under bf16 autocast so far: choose "
                                  "fp32 or bf16")
    chosen = targets(setup.lora_targets, shape)
    foreign = [name for name in chosen if name not in family_modules(shape)]
    if foreign:
        raise FieldError("lora_targets", f"this model's code names its linear layers {', '.join(family_modules(shape))}"
                                         f", not {', '.join(foreign)}: choose among them, or {ALL_LINEAR}")
    attention = ("c_attn",) if gpt2 else ("q_proj", "k_proj", "v_proj")
    if not set(chosen) & set(attention):
        named = f"{', '.join(attention[:-1])} or {attention[-1]}" if len(attention) > 1 else attention[0]
        raise FieldError("lora_targets", f"calc models LoRA targets that include {named} (so that every layer's "
                                         "attention needs gradients): add " + ("one" if len(attention) > 1 else "it"))


def _check_reference(shape: ModelShape, setup) -> None:
    """FieldError naming the field where calc does not model LoRA on the reference
    implementation: measured for its CS336 shape, without selective recomputation, with a
    bf16 (not 4-bit) base."""
    if (shape.norm, shape.ffn, shape.positions) != ("rmsnorm", "swiglu", "rope"):
        raise FieldError("implementation", "LoRA on the reference implementation is measured for its CS336 shape "
                                           "(RMSNorm, SwiGLU, RoPE) so far: choose those, or implementation hf")
    if setup.checkpoint == "selective":
        raise FieldError("checkpoint", "LoRA is measured with whole blocks checkpointed or none: choose none or block")
    if setup.finetune == "qlora":
        raise FieldError("finetune", "QLoRA is modelled for Hugging Face's Llama-style code so far: choose finetune "
                                     "lora, or implementation hf")


def check_layout(setup) -> None:
    """FieldError where calc does not model LoRA, or bitsandbytes' 8-bit AdamW, on this
    layout: one GPU or DDP replicas."""
    one_or_ddp = (setup.tp, setup.pp, setup.cp, setup.zero) == (1, 1, 1, 0)
    if trains_adapters(setup) and not one_or_ddp:
        raise FieldError("finetune", "LoRA is modelled on one GPU or on DDP replicas so far: choose tp, pp and cp 1, "
                                     "ZeRO 0")
    if setup.optimizer in EIGHT_BIT_OPTIMIZERS and not (one_or_ddp and setup.framework in ("auto", "ddp")):
        raise FieldError("optimizer", "bitsandbytes' 8-bit AdamW is modelled on one GPU or on DDP replicas so far "
                                      "(each keeps the whole state): choose tp, pp and cp 1, ZeRO 0, framework auto or "
                                      "ddp, or optimizer adamw")
