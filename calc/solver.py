"""The reader's question, answered: on how few GPUs does this step fit, and how?

The reader gives the model, the step, the sequences one optimizer step trains on (or the
setup's global batch, dp · micro-batches · batch), the card or a budget, and constraints:
a fixed ZeRO stage (or FSDP's name for it), the most micro-batches allowed, whether tensor,
pipeline and context parallelism may be used. Every layout is judged by the peak of its
fullest GPU's step (calc.peak, the same moments as on one GPU). The answer is the layout
with the fewest GPUs; among those, the fewest micro-batches (least accumulation); then the
lowest ZeRO stage and the least tensor, pipeline and context parallelism (least
communication); then the least memory.

Bounded: tensor and context parallelism up to 8-way, pipelines up to 128 stages; for each
tensor, sequence, pipeline, context and ZeRO choice, a bisection over the data-parallel
sizes and one over the micro-batch counts; at most MAX_EVALUATIONS layouts in all.
"""

from __future__ import annotations

from dataclasses import dataclass

from calc.parallel import divisors
from calc.fit import peak_bytes
from calc.setup import MAX_PARALLEL, TrainingSetup
from calc.shape import ModelShape
from calc.splits import check_layout

SOLVER_MAX_TP = 8
SOLVER_MAX_PP = 128
"""Tensor parallelism up to 8-way (one node), pipelines up to 128 stages."""
FSDP_STAGES = {"no-shard": 0, "grad-op": 2, "full": 3}
"""PyTorch FSDP's sharding strategies as ZeRO stages: NO_SHARD (DDP), SHARD_GRAD_OP, FULL_SHARD."""


@dataclass(frozen=True)
class Question:
    """The solver's question: the `sequences` a step trains on (None: the setup's global
    batch, dp · micro-batches · batch); its constraints: `stage`, "any" or a ZeRO stage
    "0"-"3"; `max_microbatches` (None: as many as the sequences allow); whether tensor
    (`allow_tp`), pipeline (`allow_pp`) and context (`allow_cp`, with flash attention)
    parallelism may be used."""

    stage: str = "any"
    sequences: int | None = None
    max_microbatches: int | None = None
    allow_tp: bool = True
    allow_pp: bool = True
    allow_cp: bool = True

    def replace(self, **changes) -> "Question":
        return Question(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class Layout:
    """A layout that fits: the setup (dp, zero, tp, sp, pp, cp, micro-batches, batch set),
    its GPU count and the peak of its fullest GPU, in bytes."""

    setup: TrainingSetup
    gpus: int
    peak: int

    @property
    def order(self) -> tuple:
        """Fewest GPUs, then least accumulation, then the lowest ZeRO stage, then the least
        model parallelism (tp · pp · cp), then memory."""
        return (self.gpus, self.setup.microbatches, self.setup.zero, self.setup.tp * self.setup.pp * self.setup.cp,
                self.peak)


RUNNER_UPS = 7
"""Layouts shown beside the answer."""
MAX_EVALUATIONS = 1500
"""The most layouts judged for one answer (a few hundred for real models); a search that
reaches it stops and says so."""


@dataclass
class _Budget:
    left: int = MAX_EVALUATIONS

    def spend(self) -> None:
        if self.left <= 0:
            raise _Exhausted
        self.left -= 1


class _Exhausted(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    """The fitting layouts, best first (the answer, then runner-ups), and whether the search
    stopped at MAX_EVALUATIONS before trying every family."""

    layouts: tuple
    complete: bool = True


def solve(shape: ModelShape, setup: TrainingSetup, budget: int, question: Question = Question()) -> tuple[Layout, ...]:
    """The best fitting layout of each family, best first: the answer, then up to
    RUNNER_UPS runner-ups (empty if nothing within the bounds fits `budget` bytes)."""
    return search(shape, setup, budget, question).layouts


def search(shape: ModelShape, setup: TrainingSetup, budget: int, question: Question = Question()) -> Answer:
    """solve(), saying whether every family was tried. Families (tensor, sequence, pipeline,
    context and ZeRO choice) are tried by their model-parallel size (tp · pp · cp), smallest
    first; one that cannot beat the runner-ups found so far is not tried."""
    sequences = question.sequences or setup.global_batch
    best: dict[tuple, Layout] = {}
    spent = _Budget()
    complete = True
    for tp, sp, pp, cp, zero in sorted(_families(shape, setup, question), key=lambda f: (f[0] * f[2] * f[3], f)):
        ranked = sorted(best.values(), key=lambda layout: layout.order)
        bound = ranked[RUNNER_UPS].gpus if len(ranked) > RUNNER_UPS else None
        if bound is not None and tp * pp * cp > bound:
            break  # every later family needs more GPUs than the answer and its runner-ups
        try:
            found = _fewest_gpus(shape, setup, budget, question, sequences, tp, sp, pp, cp, zero, bound, spent)
        except _Exhausted:
            complete = False
            break
        if found is not None:
            key = (tp, pp, cp, found.setup.zero)
            if key not in best or found.order < best[key].order:
                best[key] = found
    return Answer(tuple(sorted(best.values(), key=lambda layout: layout.order))[:RUNNER_UPS + 1], complete)


SOLVER_MAX_CP = 8
"""Context parallelism up to 8-way."""


def _families(shape: ModelShape, setup: TrainingSetup, question: Question):
    """(tp, sp, pp, cp, zero) of every layout family the question allows."""
    tps = [t for t in divisors(shape.heads, SOLVER_MAX_TP if question.allow_tp else 1)
           if shape.kv_heads % t == 0 and shape.d_ff % t == 0]
    pps = divisors(shape.layers, SOLVER_MAX_PP if question.allow_pp else 1)
    cps = [c for c in divisors(shape.context, SOLVER_MAX_CP if question.allow_cp and setup.attention == "flash" else 1)
           if shape.context % (2 * c) == 0 or c == 1]
    stages = (0, 1, 2, 3) if question.stage == "any" else (int(question.stage),)
    for tp in tps:
        for sp in ((False, True) if tp > 1 and shape.context % tp == 0 else (False,)):
            for pp in pps:
                for cp in cps:
                    for zero in stages:
                        if pp > 1 and zero >= 2:
                            continue  # DeepSpeed refuses ZeRO-2/3 with pipeline parallelism
                        yield tp, sp, pp, cp, zero


def _fewest_gpus(shape, setup, budget, question, sequences, tp, sp, pp, cp, zero, bound=None,
                 spent: _Budget | None = None) -> Layout | None:
    """The family's layout with the fewest replicas that fits, with its fewest micro-batches.

    The replicas are found by bisection over the global batch's divisors, at the most
    micro-batches each allows: from two replicas on, the fullest GPU's memory does not grow
    with dp (ZeRO shards more, each replica's micro-batches get no larger, fewer are in
    flight); one replica, which needs no communication buffers, is tried first."""
    cap = min(question.max_microbatches or MAX_PARALLEL, MAX_PARALLEL)
    replicas = [d for d in divisors(sequences, MAX_PARALLEL)
                # over one replica ZeRO shards nothing: with any stage, stage 0 says the same; a stage the
                # reader fixes must shard, unless one GPU holds everything
                if not (zero > 0 and d * cp == 1 and (question.stage == "any" or tp * pp > 1))
                and (bound is None or d * tp * pp * cp <= bound)]

    def layout(dp: int, m: int) -> TrainingSetup:
        return setup.replace(tp=tp, sp=sp, pp=pp, cp=cp, dp=dp, zero=zero, microbatches=m, batch=sequences // dp // m,
                             virtual_stages=1)

    def most_micro_batches(dp: int) -> int:
        return divisors(sequences // dp, cap)[-1]

    def fits(dp: int, m: int) -> bool:
        if spent is not None:
            spent.spend()
        return peak_bytes(shape, layout(dp, m)) <= budget

    # one replica has no communication buffers, so it is tried on its own; from two on, memory
    # does not grow with the replicas
    if not replicas:
        return None
    low, high = (0, 0) if fits(replicas[0], most_micro_batches(replicas[0])) else (1, len(replicas))
    while low < high:
        middle = (low + high) // 2
        if fits(replicas[middle], most_micro_batches(replicas[middle])):
            high = middle
        else:
            low = middle + 1
    if low == len(replicas):
        return None
    dp = replicas[low]
    counts = divisors(sequences // dp, cap)  # micro-batch counts allowed, ascending
    low, high = 0, len(counts) - 1  # the fewest micro-batches that fit: memory falls as they grow
    while low < high:
        middle = (low + high) // 2
        if fits(dp, counts[middle]):
            high = middle
        else:
            low = middle + 1
    chosen = layout(dp, counts[low])
    check_layout(shape, chosen)
    return Layout(chosen, chosen.gpus, peak_bytes(shape, chosen))
