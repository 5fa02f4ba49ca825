"""LoRA fine-tuning (`finetune lora`): which linear layers get adapters, and their sizes.

peft's LoRA (peft 0.21, `peft/tuners/lora/layer.py`, `Linear`) leaves each targeted
linear layer's weight W frozen and adds beside it a rank-r path: the input, through
dropout (nn.Identity at dropout 0), times A (r × d_in), times B (d_out × r), times
α / r, added to W x. Only A and B train: r·(d_in + d_out) values a targeted layer, kept in
fp32 whatever the base's dtype (get_peft_model's autocast_adapter_dtype), and peft casts
the layer's input to their dtype first. Every other parameter (the embedding, the norms,
the head) is frozen.

Modelled for Hugging Face's Llama-style code (Llama, Mistral, Qwen2), whose linear
layers are named q_proj, k_proj, v_proj, o_proj (attention) and gate_proj, up_proj,
down_proj (feed-forward); "all-linear" is peft's name for all of them (the head apart).
"""

from __future__ import annotations

from calc.errors import FieldError, echo
from calc.shape import ModelShape

LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of one Llama-style decoder layer, by the name peft targets them by."""
ALL_LINEAR = "all-linear"
FINETUNES = ("full", "lora")
"""full: every parameter trains (pretraining, full fine-tuning); lora: peft's LoRA."""


def parse_targets(text: str) -> str:
    """The lora_targets field's value: "all-linear", or module names separated by commas,
    each once, in the layer's order; FieldError naming the field for anything else."""
    text = str(text).strip()
    if text == ALL_LINEAR:
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LLAMA_MODULES]
    if not names or unknown:
        raise FieldError("lora_targets", f"lora_targets must be {ALL_LINEAR} or some of {', '.join(LLAMA_MODULES)} "
                                         f"separated by commas, not {echo(text)}")
    return ",".join(name for name in LLAMA_MODULES if name in names)


def targets(text: str) -> tuple[str, ...]:
    """The targeted modules of one layer, in its order."""
    return LLAMA_MODULES if text == ALL_LINEAR else tuple(text.split(","))


def module_shapes(shape: ModelShape) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each linear layer of a Llama-style decoder layer."""
    d, q, kv = shape.d_model, shape.heads * shape.d_head, shape.kv_heads * shape.d_head
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, shape.d_ff), "up_proj": (d, shape.d_ff), "down_proj": (shape.d_ff, d)}


def adapters_per_layer(shape: ModelShape, setup) -> int:
    """The adapters' values in one layer: r·(d_in + d_out) for each targeted module."""
    sizes = module_shapes(shape)
    return sum(setup.lora_rank * sum(sizes[name]) for name in targets(setup.lora_targets))


def adapter_count(shape: ModelShape, setup) -> int:
    """The trainable parameters: every layer's adapters."""
    return shape.layers * adapters_per_layer(shape, setup)


def adapter_tensors(shape: ModelShape, setup) -> tuple[int, ...]:
    """The values in each adapter tensor (A, then B, for each targeted module of each
    layer), in the order the optimizer steps them."""
    sizes = module_shapes(shape)
    one = tuple(setup.lora_rank * size for name in targets(setup.lora_targets) for size in sizes[name])
    return one * shape.layers


def check(shape: ModelShape, setup) -> None:
    """FieldError naming the field where calc does not model this LoRA run's code
    (calc.layout.split.check_layout: its layout)."""
    if setup.finetune == "full":
        return
    if setup.accounting != "autograd":
        raise FieldError("accounting", "LoRA is counted by what autograd keeps: choose accounting autograd")
    if shape.implementation != "hf" or shape.ffn != "swiglu":
        raise FieldError("finetune", "LoRA is modelled for Hugging Face's Llama-style code (Llama, Mistral, Qwen2) so "
                                     "far: choose implementation hf and a Llama-style preset")
    if setup.attention != "flash":
        raise FieldError("attention", "LoRA is measured with SDPA attention (flash), transformers' default: choose "
                                      "flash")
    if not set(targets(setup.lora_targets)) & {"q_proj", "k_proj", "v_proj"}:
        raise FieldError("lora_targets", "calc models LoRA targets that include q_proj, k_proj or v_proj (so that "
                                         "every layer's attention needs gradients): add one")


def check_layout(setup) -> None:
    """FieldError where calc does not model LoRA on this layout: one GPU or DDP replicas."""
    if setup.finetune == "lora" and (setup.tp, setup.pp, setup.cp, setup.zero) != (1, 1, 1, 0):
        raise FieldError("finetune", "LoRA is modelled on one GPU or on DDP replicas so far: choose tp, pp and cp 1, "
                                     "ZeRO 0")
