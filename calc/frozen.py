"""Full fine-tuning with the bottom of the model frozen: the token embedding
(`freeze_embeddings`) and the first `frozen_blocks` decoder layers, their parameters'
requires_grad off, as a reader does by hand before building the optimizer.

A frozen parameter keeps its weight and nothing else: no gradient, no optimizer state,
and under bf16 autocast no cached bf16 copy (autocast caches only weights that need
gradients). What autograd keeps changes as the gradients that are needed do (measured on
Hugging Face's Llama-style code, validation/results-lora.json "frozen";
calc.activations.frozen has the rows):

- without checkpointing, nothing below the first trainable layer needs a gradient: the
  embedding keeps no token ids, a frozen layer keeps nothing, and the first trainable
  layer's attention norm keeps only x·rms, for its gain's gradient; with every layer
  frozen the RoPE tables and the final norm's input and inverse RMS go too;
- with checkpointing, transformers 5.23 makes the embedding's output need a gradient
  (modeling_utils.py `_activation_checkpointing_enable` calls enable_input_require_grads
  for every model read from input_ids): each frozen layer still keeps its input and
  backward recomputes it and passes the gradient through; only the token ids go.

Modelled for Hugging Face's Llama-style code on one GPU, blocks frozen only below a
frozen embedding (a trainable embedding needs gradients through the frozen layers above
it, which is LoRA's rule without adapters: not modelled yet).
"""

from __future__ import annotations

from calc.errors import FieldError
from calc.parameters import matrix_parameter_count, parameter_count, parameter_tensors
from calc.shape import ModelShape


def block_parameters(shape: ModelShape) -> int:
    """Parameters of one decoder layer."""
    return parameter_count(shape.replace(layers=2)) - parameter_count(shape.replace(layers=1))


def block_matrices(shape: ModelShape) -> int:
    """Parameters of one decoder layer's weight matrices."""
    return matrix_parameter_count(shape.replace(layers=2)) - matrix_parameter_count(shape.replace(layers=1))


def frozen_count(shape: ModelShape, setup) -> int:
    """Parameters frozen: the token embedding's V·d (if frozen) and the frozen layers'."""
    embedding = shape.vocab * shape.d_model if setup.freeze_embeddings else 0
    return embedding + setup.frozen_blocks * block_parameters(shape)


def trainable_count(shape: ModelShape, setup, parameters: int | None = None) -> int:
    """Parameters that train, of `parameters` (the whole model's when None)."""
    return (parameter_count(shape) if parameters is None else parameters) - frozen_count(shape, setup)


def trainable_matrices(shape: ModelShape, setup) -> int:
    """Weight-matrix parameters that train: the trainable layers' and the head's (whose bf16
    copies autocast caches)."""
    return matrix_parameter_count(shape) - setup.frozen_blocks * block_matrices(shape)


def check(shape: ModelShape, setup) -> None:
    """FieldError naming the field where calc does not model this freezing."""
    if not setup.freezes:
        return
    field = "frozen_blocks" if setup.frozen_blocks else "freeze_embeddings"
    if setup.finetune != "full":
        raise FieldError(field, "LoRA and QLoRA freeze every weight of the base already: choose finetune full, or "
                                "freeze nothing")
    if shape.implementation != "hf" or (shape.norm, shape.ffn, shape.positions) != ("rmsnorm", "swiglu", "rope"):
        raise FieldError(field, "frozen layers are modelled for Hugging Face's Llama-style code (Llama, Mistral, "
                                "Qwen2) so far: choose implementation hf and a Llama-style preset")
    if setup.accounting != "autograd":
        raise FieldError("accounting", "frozen layers are counted by what autograd keeps: choose accounting autograd")
    if setup.checkpoint == "selective":
        raise FieldError("checkpoint", "frozen layers are measured without checkpointing and with every layer "
                                       "checkpointed: choose none or block")
    if setup.frozen_blocks > shape.layers:
        raise FieldError("frozen_blocks", f"frozen_blocks must be at most the model's {shape.layers:,} layers")
    if setup.frozen_blocks and not setup.freeze_embeddings:
        raise FieldError("frozen_blocks", "calc models blocks frozen below a frozen token embedding (a trainable one "
                                          "needs gradients through the frozen blocks): set freeze_embeddings too")
    if shape.tied:
        raise FieldError("freeze_embeddings", "this model's head is its token embedding (tied), so freezing one "
                                              "freezes both: not modelled")


def check_layout(setup) -> None:
    """FieldError where calc does not model frozen layers on this layout: one GPU only."""
    if setup.freezes and setup.gpus > 1:
        raise FieldError("frozen_blocks" if setup.frozen_blocks else "freeze_embeddings",
                         "frozen layers are modelled on one GPU so far: choose dp, tp, pp and cp 1")


def trainable_tensors(shape: ModelShape, setup) -> tuple[int, ...]:
    """The values of each parameter tensor that trains, in the order the optimizer steps
    them (Hugging Face's registration order: the embedding, the layers, the final norm and
    the head); frozen ones have no gradient and the step skips them."""
    tensors = parameter_tensors(shape)
    per_layer = (len(tensors) - 3) // shape.layers  # the embedding, the final norm and the head apart
    return tensors[(1 if setup.freeze_embeddings else 0) + setup.frozen_blocks * per_layer:]
