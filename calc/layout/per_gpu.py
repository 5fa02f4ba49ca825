"""Memory per GPU when training is spread over many: data parallelism with ZeRO, tensor
(and sequence) parallelism, and pipeline parallelism.

How a layout splits the model is calc.layout.split; the peak of the fullest GPU's step is
calc.peak's, the same moments as on one GPU (so a layout of one GPU gives the one-GPU
peak; calc.layout.solver finds the layout with the fewest GPUs). The precision regimes
are calc.setup.STATE_BYTES: fp32 (4 + 4 + K bytes a parameter, K = 8 for AdamW, 4 for
SGD with momentum), bf16 autocast over fp32 weights (the same, plus bf16 weight copies)
and bf16 weights with an fp32 master copy in the optimizer (2 + 2 + 4 + K: the ZeRO
paper's 2 + 2 + 12).
"""

from __future__ import annotations

from functools import lru_cache

from calc.fit import peak_bytes
from calc.fixed import state_bytes
from calc.layout.frameworks import FRAMEWORKS, PROVENANCE, framework_of, nccl_bytes
from calc.layout.split import held_states, stages, zero_states
from calc.peak import PART_SYMBOLS, buffer_parts, fullest_stage, summed_bytes
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row
from calc.lora import EIGHT_BIT_OPTIMIZERS, trains_adapters


def per_gpu_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The fullest GPU: its model states under ZeRO, autocast's weight copies, the
    activations in flight, and the peak of its step (the same moments as one GPU)."""
    stage = fullest_stage(shape, setup) if setup.accounting == "autograd" else max(
        ("first", "last"), key=lambda st: summed_bytes(shape, setup, st))
    first, last = stages(shape, setup)
    here = first if stage == "first" else last
    psi = here.parameters
    per = state_bytes(setup)
    replicas = setup.dp * setup.cp  # ZeRO shards over the data-parallel and context-parallel ranks
    p, g, o = zero_states(psi, replicas, setup.zero, per)
    sharded = {"parameters": setup.zero >= 3, "gradients": setup.zero >= 2, "optimizer": setup.zero >= 1}
    rows = []
    if trains_adapters(setup) or setup.optimizer in EIGHT_BIT_OPTIMIZERS:  # DDP: each replica holds them whole
        labels = (("Frozen base and LoRA adapters", "Gradients of the adapters", "Optimizer state of the adapters")
                  if trains_adapters(setup) else
                  ("Parameters", "Gradients", "Optimizer state (bitsandbytes' 8-bit AdamW)"))
        for key, label, nbytes in zip(("parameters", "gradients", "optimizer"), labels,
                                      held_states(shape, setup, psi, replicas)):
            rows.append(row({"S": nbytes}, key, label, f(("S",)), 1))
        per = ()
    for (key, label), bytes_each, nbytes in zip((("parameters", "Parameters"), ("gradients", "Gradients"),
                                                 ("optimizer", "Optimizer state")), per, (p, g, o)):
        split = sharded[key] and replicas > 1
        name = f"{label}, {bytes_each} bytes each" + (", sharded over the N replicas" if split else "")
        rows.append(_state_row(key, name, psi, bytes_each, replicas if split else 1, nbytes))
    if setup.dtype == "bf16":
        copies = 2 * (here.head_matrix + (0 if setup.checkpoint == "block" else here.layers * here.block_matrices))
        rows.append(row({"C": copies}, "weight-copies", "bf16 weight copies autocast keeps", f(("C",)), 1))
    if setup.accounting != "autograd" and nccl_bytes(setup):  # a summed accounting adds NCCL's memory alone
        rows.append(row({"B_n": nccl_bytes(setup)}, "buffer-b-n", PART_SYMBOLS["B_n"][0].upper() + PART_SYMBOLS["B_n"][1:],
                        f(("B_n",)), 1))
    if setup.accounting == "autograd":
        for key, nbytes in buffer_parts(shape, setup).items():
            if nbytes:
                rows.append(row({key: nbytes}, "buffer-" + key.lower().replace("_", "-"), PART_SYMBOLS[key][0].upper()
                                + PART_SYMBOLS[key][1:], f((key,)), 1))
    where = f"{stage} pipeline stage" if setup.pp > 1 else "each GPU"
    rows.append(row({"A_gpu": here.activations}, "activations",
                    f"Activations in flight ({setup.accounting}, {where})", f(("A_gpu",)), 1))
    peak = per_gpu_bytes(shape, setup)
    rows.append(row({"M": peak}, "peak", "Peak of the step on this GPU", f(("M",)), 1,
                    note="the largest moment of its step: see Peak, not sum" if setup.accounting == "autograd"
                    else "this accounting's peak is the sum of the rows above"))
    gpus = setup.gpus
    note = (f"{gpus:,} GPU{'s' if gpus != 1 else ''}: dp {setup.dp} × tp {setup.tp} × pp {setup.pp} × cp {setup.cp}; "
            f"{psi:,} parameters on {'the ' + stage + ' stage' if setup.pp > 1 else 'each GPU'} before ZeRO; "
            f"global batch {setup.global_batch:,}.")
    notes = (note, f"{FRAMEWORKS[framework_of(setup)]}: {PROVENANCE[framework_of(setup)]}.") if gpus > 1 else (note,)
    return Table("per-gpu", "Memory per GPU", tuple(rows), count_label="bytes", notes=notes, show_total=False)


def _state_row(key: str, name: str, psi: int, bytes_each: int, replicas: int, nbytes: int):
    """bytes_each·Ψ (/N when sharded); Ψ is the parameters on one GPU after tp and pp."""
    values = {"Psi": psi, "N": replicas}
    exact = (psi * bytes_each) % replicas == 0
    terms = (bytes_each, "Psi", *(("/N",) if replicas > 1 else ())) if exact else ("ceil",)
    r = row(values | {"ceil": nbytes}, key, name, f(terms), 1)
    assert r.count == nbytes
    return r


def per_gpu_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes at the peak of the fullest GPU's step: calc.peak's moments on that GPU, or the
    sum for the accountings whose peak is their sum. With dp = tp = pp = 1 it is the
    one-GPU peak."""
    return peak_bytes(shape, setup)


@lru_cache(maxsize=1024)
@lru_cache(maxsize=4096)
def divisors(n: int, limit: int) -> tuple[int, ...]:
    """The divisors of n up to `limit`, ascending (remembered: the solver asks for the
    same ones family after family)."""
    return quotient_divisors(n, 1, limit)


@lru_cache(maxsize=4096)
def quotient_divisors(n: int, k: int, limit: int) -> tuple[int, ...]:
    """The divisors of n / k (k divides n) up to `limit`, ascending, from n's prime factors:
    the micro-batch counts of n sequences over k replicas, without factoring each n / k."""
    exponents = []
    for prime, power in prime_factors(n):
        while k % prime == 0:
            k //= prime
            power -= 1
        exponents.append((prime, power))
    found = [1]
    for prime, power in exponents:
        found = [d * prime ** e for d in found for e in range(power + 1) if d * prime ** e <= limit]
    return tuple(sorted(found))


@lru_cache(maxsize=256)
def prime_factors(n: int) -> tuple[tuple[int, int], ...]:
    """n's prime factors with their powers, by trial division up to √n (a quarter of a
    million trials for the largest number of sequences calc takes, once)."""
    factors = []
    candidate = 2
    while candidate * candidate <= n:
        if n % candidate == 0:
            power = 0
            while n % candidate == 0:
                n //= candidate
                power += 1
            factors.append((candidate, power))
        candidate += 1 if candidate == 2 else 2
    if n > 1:
        factors.append((n, 1))
    return tuple(factors)