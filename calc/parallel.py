"""Memory per GPU when training is spread over many: data parallelism with ZeRO, tensor
(and sequence) parallelism, and pipeline parallelism.

Model states follow Rajbhandari et al. (2020), "ZeRO": with Ψ parameters per GPU (after
tensor and pipeline splits) and N data-parallel replicas, stage 1 shards the optimizer
state, stage 2 the gradients too, stage 3 the parameters too. Bytes per parameter: fp32
training 4 + 4 + K (K = 8 for AdamW, 4 for SGD with momentum); bf16 mixed precision as in
the paper, 2 (bf16 weights) + 2 (bf16 gradients) + K with K = 12 (fp32 master weights and
Adam's two moments; 8 for SGD).

Activations per GPU: the accounting's rows, tensor-parallel splits applied (exactly as
Korthikanti et al. for the `megatron` accounting; for the others, as
`_split_by_tensor_parallelism` says: the heads' and the feed-forward width's tensors split
t ways, the column-parallel linears' inputs, norms and block inputs only under sequence
parallelism, the loss's s·V tensors by vocabulary-parallel cross-entropy), for L/p
layers; under the 1F1B schedule the first stage holds min(p, micro-batches) micro-batches
in flight, the last one.

Total per GPU = model states + activations in flight: the papers' accounting, without a
backward-pass peak model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from calc.activations import activation_table
from calc.errors import FieldError
from calc.fixed import OPTIMIZER_BYTES
from calc.parameters import matrix_parameter_count, parameter_table
from calc.setup import MAX_PARALLEL, TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def state_bytes(setup: TrainingSetup) -> tuple[int, int, int]:
    """Bytes per parameter of (parameters, gradients, optimizer state)."""
    optimizer = OPTIMIZER_BYTES[setup.optimizer]
    if setup.dtype == "bf16":
        return 2, 2, 4 + optimizer
    return 4, 4, optimizer


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


def check_layout(shape: ModelShape, setup: TrainingSetup) -> None:
    """FieldError naming the layout's field when the layout cannot split this model."""
    t, p = setup.tp, setup.pp
    for name, size in (("heads", shape.heads), ("kv_heads", shape.kv_heads), ("d_ff", shape.d_ff)):
        if size % t:
            raise FieldError("tp", f"tp ({t}) must divide {name} ({size})")
    if setup.sp and shape.context % t:
        raise FieldError("tp", f"tp ({t}) must divide context ({shape.context}) for sequence parallelism")
    if shape.layers % p:
        raise FieldError("pp", f"pp ({p}) must divide layers ({shape.layers})")
    if p > 1 and setup.zero >= 2:
        raise FieldError("zero", f"ZeRO stage {setup.zero} shards gradients, which pipeline parallelism accumulates "
                                 "across micro-batches: DeepSpeed refuses it; choose stage 0 or 1 with pp above 1")


@dataclass(frozen=True)
class Stage:
    parameters: int
    activations: int


def stages(shape: ModelShape, setup: TrainingSetup) -> tuple[Stage, Stage]:
    """(first, last) pipeline stage: parameters per GPU and activation bytes in flight.
    Neither depends on data parallelism (ZeRO shards the states afterwards)."""
    return _stages(shape, setup.replace(dp=1, zero=0))


@lru_cache(maxsize=512)
def _stages(shape: ModelShape, setup: TrainingSetup) -> tuple[Stage, Stage]:
    check_layout(shape, setup)
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

    rows = _split_rows(shape, setup)
    in_flight = min(p, setup.microbatches)
    B = setup.batch
    blocks = sum(r.bytes_for_batch(B) for r in rows if r.stage == "block" and not r.per_step) * layers // L
    per_step = sum(r.bytes_for_batch(B) for r in rows if r.per_step)
    emb = sum(r.bytes_for_batch(B) for r in rows if r.stage == "embedding" and not r.per_step)
    out = sum(r.bytes_for_batch(B) for r in rows if r.stage == "head" and not r.per_step)
    first = in_flight * (emb + blocks + (out if p == 1 else 0)) + per_step
    last = blocks + out + (emb if p == 1 else 0) + per_step
    return Stage(first_params, first), Stage(last_params, last)


def _split_rows(shape: ModelShape, setup: TrainingSetup):
    """The accounting's rows (per sequence) for one GPU under tensor (and sequence)
    parallelism. They depend on neither the batch nor the data or pipeline split, so the
    solver's many candidates share them."""
    return _split_rows_remembered(shape, setup.replace(batch=1, dp=1, zero=0, pp=1, microbatches=1))


@lru_cache(maxsize=256)
def _split_rows_remembered(shape: ModelShape, setup: TrainingSetup) -> tuple:
    table = activation_table(shape, setup)
    if setup.accounting == "megatron" or setup.tp == 1:
        return table.rows
    return tuple(replace(r, count=ceil_div(r.count, setup.tp)) if _split_by_tensor_parallelism(r, setup.sp) else r
                 for r in table.rows)


REPLICATED_IN_BLOCKS = {"qkv-input", "ffn-input", "attention-input", "attention-residual-dropout",
                        "ffn-residual-dropout"}
"""Block tensors every tensor-parallel rank keeps whole unless sequence parallelism splits
them (Korthikanti et al. 2022, section 4.2: the inputs of the column-parallel linears and
the residual dropout masks, with the norms' tensors and the block inputs)."""


def _split_by_tensor_parallelism(r, sp: bool) -> bool:
    """Whether one of t tensor-parallel ranks keeps 1/t of row `r`.

    Split: what belongs to the rank's heads or its share of the feed-forward width (Q, K,
    V, scores, P, the attention output, W1 x, …), and in the head the s·V tensors, which
    vocabulary-parallel cross-entropy splits by vocabulary. Kept whole on every rank: rows
    kept once per step (the causal mask, RoPE's tables); without sequence parallelism also
    the norms' tensors, the block inputs, the column-parallel linears' inputs and the
    residual dropout masks; in the head, the final norm and the head's input."""
    if r.per_step:
        return False
    if r.stage == "head":
        return any("V" in term for term in r.formula.terms)
    if r.stage != "block":
        return False
    if sp:
        return True
    return r.category in ("attention", "quadratic", "ffn") and r.key not in REPLICATED_IN_BLOCKS


def per_gpu_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Bytes on the fullest GPU: model states under ZeRO, and activations in flight."""
    first, last = stages(shape, setup)
    worst = max((first, last), key=lambda st: _total(st, setup))
    which = "first" if worst is first else "last"
    psi = worst.parameters
    per = state_bytes(setup)
    p, g, o = zero_states(psi, setup.dp, setup.zero, per)
    sharded = {"parameters": setup.zero >= 3, "gradients": setup.zero >= 2, "optimizer": setup.zero >= 1}
    rows = []
    for (key, label), bytes_each, nbytes in zip((("parameters", "Parameters"), ("gradients", "Gradients"),
                                                 ("optimizer", "Optimizer state")), per, (p, g, o)):
        split = sharded[key] and setup.dp > 1
        name = f"{label}, {bytes_each} bytes each" + (", sharded over the N replicas" if split else "")
        rows.append(_state_row(key, name, psi, bytes_each, setup.dp if split else 1, nbytes))
    rows.append(row({"A_gpu": worst.activations}, "activations",
                    f"Activations in flight ({setup.accounting}, {which} pipeline stage)", f(("A_gpu",)), 1))
    note = (f"{setup.dp * setup.tp * setup.pp:,} GPUs: dp {setup.dp} × tp {setup.tp} × pp {setup.pp}; "
            f"{psi:,} parameters on the {which} stage's GPUs; global batch {setup.global_batch:,}.")
    return Table("per-gpu", "Memory per GPU", tuple(rows), count_label="bytes", notes=(note,))


def _state_row(key: str, name: str, psi: int, bytes_each: int, replicas: int, nbytes: int):
    """bytes_each·Ψ (/N when sharded); Ψ is the parameters on one GPU after tp and pp."""
    values = {"Psi": psi, "N": replicas}
    exact = (psi * bytes_each) % replicas == 0
    terms = (bytes_each, "Psi", *(("/N",) if replicas > 1 else ())) if exact else ("ceil",)
    r = row(values | {"ceil": nbytes}, key, name, f(terms), 1)
    assert r.count == nbytes
    return r


def _total(stage: Stage, setup: TrainingSetup) -> int:
    return sum(zero_states(stage.parameters, setup.dp, setup.zero, state_bytes(setup))) + stage.activations


def per_gpu_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes on the fullest GPU."""
    return max(_total(st, setup) for st in stages(shape, setup))


def divisors(n: int, limit: int) -> list[int]:
    """The divisors of n up to `limit`, ascending: at most `limit` trials, whatever n."""
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


SOLVER_MAX_TP = 8
SOLVER_MAX_PP = 128
"""The solver tries tensor parallelism up to 8-way (one node) and up to 128 pipeline stages."""


def smallest_layout(shape: ModelShape, setup: TrainingSetup, budget: int) -> TrainingSetup | None:
    """The layout with the fewest GPUs whose fullest GPU fits `budget` bytes, for the
    setup's global batch (dp · microbatches · batch) in micro-batches of one sequence;
    ties go to the least memory per GPU. None if nothing within the limits fits.

    Bounded: dp runs over the divisors of the global batch up to MAX_PARALLEL that leave
    at most MAX_PARALLEL micro-batches; for each tensor and pipeline split the smallest dp
    that fits is found by bisection, since the fullest GPU's memory never grows with dp
    (ZeRO-3 shards more, and fewer micro-batches are in flight). At most
    |tp| · 2 · |pp| · log2|dp| setups are built, a few hundred."""
    global_batch = setup.global_batch
    replicas = [d for d in divisors(global_batch, MAX_PARALLEL) if global_batch // d <= MAX_PARALLEL]
    best = None
    for tp in divisors(shape.heads, SOLVER_MAX_TP):
        if shape.kv_heads % tp or shape.d_ff % tp:
            continue
        for sp in ((False, True) if tp > 1 and shape.context % tp == 0 else (False,)):
            for pp in divisors(shape.layers, SOLVER_MAX_PP):
                def layout(dp: int) -> TrainingSetup:
                    zero = 0 if dp == 1 else 3 if pp == 1 else 1  # DeepSpeed allows stage 1 at most with pipelines
                    return setup.replace(tp=tp, sp=sp, pp=pp, dp=dp, zero=zero, batch=1,
                                         microbatches=global_batch // dp)
                low, high = 0, len(replicas)  # the first index whose layout fits, or len(replicas)
                while low < high:
                    middle = (low + high) // 2
                    if per_gpu_bytes(shape, layout(replicas[middle])) <= budget:
                        high = middle
                    else:
                        low = middle + 1
                if low == len(replicas):
                    continue
                candidate = layout(replicas[low])
                key = (replicas[low] * tp * pp, per_gpu_bytes(shape, candidate))
                if best is None or key < best[0]:
                    best = (key, candidate)
    return best[1] if best else None
