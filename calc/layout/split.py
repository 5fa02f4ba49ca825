"""How a layout splits one model over GPUs: the parameters on each pipeline stage, the
activation rows one tensor-parallel rank keeps, and ZeRO's shards of the model states.

Model states follow Rajbhandari et al. (2020), "ZeRO": with Ψ parameters per GPU (after
tensor and pipeline splits) and N data-parallel replicas, stage 1 shards the optimizer
state, stage 2 the gradients too, stage 3 the parameters too, in the precision regime's
bytes a parameter (calc.fixed.state_bytes).

Activations per GPU: the accounting's rows, tensor-parallel splits applied (exactly as
Korthikanti et al. for the `megatron` accounting; for the others, as
`_split_by_tensor_parallelism` says: the heads' and the feed-forward width's tensors split
t ways, the column-parallel linears' inputs, norms and block inputs only under sequence
parallelism, the loss's s·V tensors by vocabulary-parallel cross-entropy), for L/p
layers; under the 1F1B schedule the first stage holds min(p, micro-batches) micro-batches
in flight, the last one.

Used by calc.peak, which walks the step's moments on the fullest GPU, and calc.layout.per_gpu.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from calc.activations import activation_table
from calc.errors import FieldError
from calc.fixed import eight_bit_state_bytes, lora_states, state_bytes
from calc.layout.frameworks import check_framework, keeps_gathered_inputs
from calc.frozen import check_layout as check_frozen_layout
from calc.frozen import trainable_count
from calc.lora import check_layout as check_lora_layout
from calc.lora import EIGHT_BIT_OPTIMIZERS, trains_adapters
from calc.parameters import matrix_parameter_count, parameter_table, parameter_tensors
from calc.setup import TrainingSetup
from calc.shape import ModelShape


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def zero_states(psi: int, replicas: int, stage: int, per_param: tuple[int, int, int]) -> tuple[int, int, int]:
    """Bytes of (parameters, gradients, optimizer state) on one GPU under ZeRO `stage`."""
    p, g, o = (psi * b for b in per_param)
    shard = lambda x: ceil_div(x, replicas)  # noqa: E731
    if stage >= 1:
        o = shard(o)
    if stage >= 2:
        g = shard(g)
    if stage >= 3:
        p = shard(p)
    return p, g, o


def held_states(shape: ModelShape, setup: TrainingSetup, parameters: int, replicas: int) -> tuple[int, int, int]:
    """Bytes of (weights, gradients, optimizer state) one GPU holds of `parameters` of the
    model over `replicas` ZeRO ranks: ZeRO's shards in the precision's bytes, or under
    LoRA the frozen base and the adapters (calc.fixed.lora_states: one GPU or DDP)."""
    if trains_adapters(setup):
        return lora_states(shape, setup, parameters)
    if setup.freezes or setup.optimizer in EIGHT_BIT_OPTIMIZERS:  # one GPU, or (8-bit AdamW) DDP replicas
        weights, gradients, kept = state_bytes(setup)  # frozen parameters hold their weights alone
        trainable = trainable_count(shape, setup, parameters)
        optimizer = eight_bit_state_bytes(shape, setup) if setup.optimizer in EIGHT_BIT_OPTIMIZERS else kept * trainable
        return weights * parameters, gradients * trainable, optimizer
    return zero_states(parameters, replicas, setup.zero, state_bytes(setup))


def check_layout(shape: ModelShape, setup: TrainingSetup, framework: bool = True) -> None:
    """FieldError naming the layout's field when the layout cannot split this model, or
    (`framework`) its framework does not run it."""
    t, p = setup.tp, setup.pp
    for name, size in (("heads", shape.heads), ("kv_heads", shape.kv_heads), ("d_ff", shape.d_ff)):
        if size % t:
            raise FieldError("tp", f"tp ({t}) must divide {name} ({size})")
    if setup.sp and shape.context % t:
        raise FieldError("tp", f"tp ({t}) must divide context ({shape.context}) for sequence parallelism")
    if shape.layers % p:
        raise FieldError("pp", f"pp ({p}) must divide layers ({shape.layers})")
    if setup.cp > 1:
        if shape.context % (2 * setup.cp):
            raise FieldError("cp", f"2 × cp ({2 * setup.cp}) must divide context ({shape.context:,}): each GPU takes two "
                                   "chunks of every sequence, one early and one late, to balance causal attention")
        if setup.attention != "flash" or setup.accounting not in ("autograd", "megatron"):
            raise FieldError("cp", "context parallelism runs fused attention across the GPUs: choose flash attention "
                                   "and the autograd or megatron accounting")
    if shape.layers % (p * setup.virtual_stages):
        raise FieldError("virtual_stages", f"pp × virtual_stages ({p * setup.virtual_stages}) must divide layers "
                                           f"({shape.layers})")
    if p > 1 and setup.zero >= 2 and setup.framework != "fsdp2":  # FSDP2's own check says what it does
        raise FieldError("zero", f"ZeRO stage {setup.zero} shards gradients, which pipeline parallelism accumulates "
                                 "across micro-batches: DeepSpeed refuses it; choose stage 0 or 1 with pp above 1")
    check_lora_layout(setup)
    check_frozen_layout(setup)
    if framework:
        check_framework(setup)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage's share on one GPU: `parameters` in all; of them, one block's
    (`block`, and its weight matrices `block_matrices`), the embedding's and the final
    norm and head's (0 where the stage has none; `head_matrix`, the head's weight matrix
    shard, which autocast copies); the layers it runs; and `activations`, the bytes in
    flight under 1F1B (the papers' sum); `tensors`, how many parameter tensors it holds
    (the optimizer keeps a step count for each)."""

    parameters: int
    activations: int
    tensors: int = 0
    layers: int = 0
    block: int = 0
    block_matrices: int = 0
    embedding: int = 0
    head: int = 0
    head_matrix: int = 0


ROWS_DEPEND_ON = ("accounting", "attention", "checkpoint", "dtype", "device", "arch", "tp", "sp", "cp",
                  "keeps_gathered_inputs",
                  "finetune", "lora_rank", "lora_dropout", "lora_targets", "prepare_kbit", "quant_type",
                  "freeze_embeddings", "frozen_blocks")
"""The setup's fields (and, through its framework, what its tensor parallelism keeps) a
GPU's activation rows (per sequence) depend on."""
STAGES_DEPEND_ON = (*ROWS_DEPEND_ON, "pp", "virtual_stages", "microbatches", "batch")
"""The setup's fields the pipeline stages depend on (ZeRO shards their states afterwards)."""

_remembered: dict[tuple, object] = {}


def remember(kind: str, shape: ModelShape, setup: TrainingSetup, fields: tuple, make):
    """make() once per model and values of `fields`: the solver judges thousands of layouts
    that differ only in fields these answers do not read."""
    key = (kind, shape, *(getattr(setup, name) for name in fields))
    if key not in _remembered:
        if len(_remembered) > 8192:
            _remembered.clear()
        _remembered[key] = make()
    return _remembered[key]


def stages(shape: ModelShape, setup: TrainingSetup) -> tuple[Stage, Stage]:
    """(first, last) pipeline stage: parameters per GPU and activation bytes in flight.
    Neither depends on data parallelism (ZeRO shards the states afterwards)."""
    gathered = keeps_gathered_inputs(setup)
    split = remember(("stages", gathered), shape, setup, STAGES_DEPEND_ON,
                     lambda: _stages(shape, setup.replace(dp=1, zero=0), gathered))
    check_framework(setup)  # here: the stages are worked out over one replica, which may be no framework's
    return split


@lru_cache(maxsize=512)
def _stages(shape: ModelShape, setup: TrainingSetup, gathered: bool) -> tuple[Stage, Stage]:
    check_layout(shape, setup, framework=False)
    t, p, L = setup.tp, setup.pp, shape.layers
    params = {r.key: r.count for r in parameter_table(shape).rows}
    head_matrix = shape.vocab * shape.d_model
    block_matrix = (matrix_parameter_count(shape) - head_matrix) // L
    block_all = sum(c for k, c in params.items() if k not in ("token-embedding", "position-embedding", "final-norm", "lm-head")) // L
    block = block_matrix // t + (block_all - block_matrix)
    vocab_shard = ceil_div(shape.vocab, t) * shape.d_model
    embedding = vocab_shard + params.get("position-embedding", 0)
    head = params["final-norm"] + (vocab_shard if (not shape.tied or p > 1) else 0)
    layers = L // p
    first_params = embedding + layers * block + (head if p == 1 else 0)
    last_params = layers * block + head + (embedding if p == 1 else 0)

    rows = split_rows(shape, setup, gathered)
    chunks, micro_batches = setup.in_flight()
    B = setup.batch
    blocks = sum(r.bytes_for_batch(B) for r in rows if r.stage == "block" and not r.per_step) * layers // L
    per_step = sum(r.bytes_for_batch(B) for r in rows if r.per_step)
    emb = sum(r.bytes_for_batch(B) for r in rows if r.stage == "embedding" and not r.per_step)
    out = sum(r.bytes_for_batch(B) for r in rows if r.stage == "head" and not r.per_step)
    chunk = blocks // setup.virtual_stages  # one chunk's layers (all the stage's when not interleaved)
    first = chunks * chunk + micro_batches * (emb + (out if p == 1 else 0)) + per_step
    last = blocks + out + (emb if p == 1 else 0) + per_step
    per_block = len(parameter_tensors(shape.replace(layers=2))) - len(parameter_tensors(shape.replace(layers=1)))
    embedding_tensors = 1 + (shape.positions == "learned")
    head_tensors = len(parameter_tensors(shape.replace(layers=1))) - per_block - embedding_tensors + (shape.tied and p > 1)
    first_tensors = embedding_tensors + layers * per_block + (head_tensors if p == 1 else 0)
    last_tensors = layers * per_block + head_tensors + (embedding_tensors if p == 1 else 0)
    common = dict(layers=layers, block=block, block_matrices=block_matrix // t)
    head_matrix = vocab_shard if (not shape.tied or p > 1) else ceil_div(shape.vocab, t) * shape.d_model
    return (Stage(first_params, first, first_tensors, embedding=embedding, head=head if p == 1 else 0,
                  head_matrix=head_matrix if p == 1 else 0, **common),
            Stage(last_params, last, last_tensors, embedding=embedding if p == 1 else 0, head=head, head_matrix=head_matrix, **common))


def split_rows(shape: ModelShape, setup: TrainingSetup, gathered: bool | None = None):
    """The accounting's rows (per sequence) for one GPU under tensor (and sequence)
    parallelism. They depend on neither the batch nor the data or pipeline split, so the
    solver's many candidates share them. `gathered`: whether the framework keeps the
    column-parallel linears' gathered inputs (calc.layout.frameworks.keeps_gathered_inputs; read
    from `setup` when None)."""
    if gathered is None:
        gathered = keeps_gathered_inputs(setup)
    return remember(("rows", gathered), shape, setup, ROWS_DEPEND_ON, lambda: _split_rows_remembered(
        shape, setup.replace(batch=1, dp=1, zero=0, pp=1, virtual_stages=1, microbatches=1), gathered))


@lru_cache(maxsize=256)
def _split_rows_remembered(shape: ModelShape, setup: TrainingSetup, gathered: bool) -> tuple:
    rows = activation_table(shape, setup.replace(cp=1)).rows
    if setup.accounting != "megatron" and setup.tp > 1:
        rows = tuple(replace(r, count=ceil_div(r.count, setup.tp))
                     if _split_by_tensor_parallelism(r, setup.sp, gathered) else r for r in rows)
    if setup.cp > 1:  # each GPU keeps its 1/cp of every sequence's tokens
        rows = tuple(replace(r, count=ceil_div(r.count, setup.cp)) if _has_tokens(r) and not r.per_step else r
                     for r in rows)
    return rows


def _has_tokens(r) -> bool:
    """Whether every term of row r's formula counts tokens (s), so that splitting the
    sequence splits it."""
    return all(any(symbol in ("s", "s_32") for symbol in term) for term in r.formula.terms)


REPLICATED_IN_BLOCKS = {"qkv-input", "ffn-input", "attention-input", "attention-residual-dropout",
                        "ffn-residual-dropout"}
"""Block tensors every tensor-parallel rank keeps whole unless sequence parallelism splits
them (Korthikanti et al. 2022, section 4.2: the inputs of the column-parallel linears and
the residual dropout masks, with the norms' tensors and the block inputs)."""


COLUMN_PARALLEL_INPUTS = {"qkv-input", "ffn-input", "head-input"}
"""The inputs the column-parallel linears keep for their weights' gradients: under
sequence parallelism each rank keeps its shard (Megatron-LM) or the all-gathered whole
(PyTorch's DTensor)."""


def _split_by_tensor_parallelism(r, sp: bool, gathered: bool) -> bool:
    """Whether one of t tensor-parallel ranks keeps 1/t of row `r`.

    Split: what belongs to the rank's heads or its share of the feed-forward width (Q, K,
    V, scores, P, the attention output, W1 x, …), and in the head the s·V tensors, which
    vocabulary-parallel cross-entropy splits by vocabulary. Kept whole on every rank: rows
    kept once per step (the causal mask, RoPE's tables); without sequence parallelism also
    the norms' tensors (the final norm's too), the block inputs, the column-parallel
    linears' inputs and the residual dropout masks. With sequence parallelism all of these
    are split too (the final norm's as well: it runs on the rank's tokens, Megatron-LM's
    and torchtitan's alike), but the column-parallel linears' inputs where the framework
    keeps them gathered (`gathered`); the targets stay whole (the loss reads every
    token's logits, split by vocabulary)."""
    if r.per_step:
        return False
    if sp and gathered and r.key in COLUMN_PARALLEL_INPUTS:
        return False
    if r.stage == "head":
        return any("V" in term for term in r.formula.terms) or (
            sp and (r.key.startswith("final-norm") or r.key == "head-input"))
    if r.stage != "block":
        return False
    if sp:
        return True
    return r.category in ("attention", "quadratic", "ffn") and r.key not in REPLICATED_IN_BLOCKS
