"""The reader's question, answered: on how few GPUs does this step fit, and how?

The reader gives the model, the step, the sequences one optimizer step trains on (or the
setup's global batch, dp · micro-batches · batch), the card or a budget, and constraints:
a fixed ZeRO stage (or FSDP's name for it), the most micro-batches allowed, whether tensor,
pipeline and context parallelism may be used. Every layout is judged by the peak of its
fullest GPU's step (calc.fit, the same moments as on one GPU). The answer is the layout
with the fewest GPUs; among those, what it costs to run (calc.layout.costs): the least time its
pipeline idles, then the fewest bytes each GPU sends a step; then the fewest micro-batches;
then the least memory.

Exact over the layouts it considers (tensor and context parallelism up to 8-way, pipelines
up to 128 stages, interleaved in up to 4 chunks, every ZeRO stage the framework runs,
every data-parallel size that divides the sequences, every micro-batch count up to the
cap), without assuming that memory falls as replicas
grow (it does not: under a micro-batch cap the micro-batch size rises and falls with the
replicas). Every family's replica counts are visited in one ascending order of GPUs, and
at each the family either fits with one micro-batch or with the most the cap allows: from
two micro-batches on, the fullest GPU's peak does not grow with their number (the
micro-batch shrinks; a first pipeline stage holds min(pp, m) of them, min(pp, m)/m of the
sequences) — the one fact about memory it relies on, which a brute-force test checks. The
search stops once the answer and RUNNER_UPS other families have fitted at no more GPUs
than any layout left; at most MAX_EVALUATIONS layouts in all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

from calc.errors import FieldError
from calc.fit import peak_bytes
from calc.layout.costs import bubble, sent_bytes
from calc.layout.frameworks import check_framework, nccl_bytes
from calc.layout.per_gpu import divisors, quotient_divisors
from calc.layout.split import check_layout, held_states, stages
from calc.peak import peak_floor
from calc.setup import MAX_BATCH, MAX_PARALLEL, TrainingSetup
from calc.shape import ModelShape

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
    """A layout that fits: the setup (dp, zero, tp, sp, pp, v, cp, micro-batches, batch
    set), its GPU count, the peak of its fullest GPU (bytes), what it costs to run
    (calc.layout.costs): its pipeline's bubble (a share of the step) and the bytes each GPU sends
    a step."""

    setup: TrainingSetup
    gpus: int
    peak: int
    bubble: Fraction = Fraction(0)
    sent: int = 0

    @property
    def order(self) -> tuple:
        """Fewest GPUs, then the least idle pipeline, then the least communication, then
        the fewest micro-batches, then memory."""
        return (self.gpus, self.bubble, self.sent, self.setup.microbatches, self.peak)


RUNNER_UPS = 7
"""Layouts shown beside the answer."""
MAX_EVALUATIONS = 2500
"""The most layouts judged for one answer (a few thousand for real models); a search that
reaches it stops and says so."""


class _Exhausted(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    """The fitting layouts, best first (the answer, then runner-ups), and whether the search
    stopped at MAX_EVALUATIONS before it was done."""

    layouts: tuple
    complete: bool = True


def solve(shape: ModelShape, setup: TrainingSetup, budget: int, question: Question = Question()) -> tuple[Layout, ...]:
    """The best fitting layout of each family, best first: the answer, then up to
    RUNNER_UPS runner-ups (empty if nothing within the bounds fits `budget` bytes)."""
    return search(shape, setup, budget, question).layouts


def search(shape: ModelShape, setup: TrainingSetup, budget: int, question: Question = Question()) -> Answer:
    """solve(), saying whether the search was complete. Each family (tensor, sequence,
    pipeline, context parallelism and ZeRO stage) keeps its fewest-GPU layout; families of
    the same tp, pp, cp and stage (with and without sequence parallelism) are one."""
    sequences = question.sequences or setup.global_batch
    cap = min(question.max_microbatches or MAX_PARALLEL, MAX_PARALLEL)
    judge = _Judge(shape, setup, budget, sequences, cap)
    candidates = []
    for tp, sp, pp, v, cp, zero in _families(shape, setup, question):
        replicas = _replicas(sequences, tp, pp, cp, zero, question)
        widest = setup.replace(tp=tp, sp=sp, pp=pp, cp=cp, zero=zero, dp=replicas[-1] if replicas else 1, batch=1,
                               microbatches=pp, virtual_stages=1)
        if replicas and _states_fit(shape, widest, budget):
            candidates += [(dp * tp * pp * cp, tp * pp * cp, dp, (tp, sp, pp, v, cp, zero)) for dp in replicas]
    candidates.sort()
    best: dict[tuple, Layout] = {}
    done: set[tuple] = set()
    complete = True
    for gpus, _, dp, family in candidates:
        ranked = sorted(best.values(), key=lambda layout: layout.order)
        if len(ranked) > RUNNER_UPS and gpus > ranked[RUNNER_UPS].gpus:
            break  # every layout left needs more GPUs than the answer and its runner-ups
        if family in done:
            continue
        try:
            found = judge.fewest_micro_batches(dp, *family)
        except _Exhausted:
            complete = False
            break
        if found is None:
            continue
        done.add(family)
        tp, _, pp, v, cp, zero = family
        key = (tp, pp, v, cp, found.setup.zero)
        if key not in best or found.order < best[key].order:
            best[key] = found
    return Answer(tuple(sorted(best.values(), key=lambda layout: layout.order))[:RUNNER_UPS + 1], complete)


SOLVER_MAX_CP = 8
"""Context parallelism up to 8-way."""


SOLVER_MAX_V = 4
"""Interleaved pipelines of up to 4 chunks a stage."""


def _families(shape: ModelShape, setup: TrainingSetup, question: Question):
    """(tp, sp, pp, v, cp, zero) of every layout family the question allows: v > 1 an
    interleaved pipeline of v chunks a stage."""
    tps = [t for t in divisors(shape.heads, SOLVER_MAX_TP if question.allow_tp else 1)
           if shape.kv_heads % t == 0 and shape.d_ff % t == 0]
    pps = divisors(shape.layers, SOLVER_MAX_PP if question.allow_pp else 1)
    cps = [c for c in divisors(shape.context, SOLVER_MAX_CP if question.allow_cp and setup.attention == "flash" else 1)
           if shape.context % (2 * c) == 0 or c == 1]
    stages = (0, 1, 2, 3) if question.stage == "any" else (int(question.stage),)
    for tp in tps:
        for sp in ((False, True) if tp > 1 and shape.context % tp == 0 else (False,)):
            for pp in pps:
                chunks = divisors(shape.layers // pp, SOLVER_MAX_V) if pp > 1 else (1,)
                for v, cp, zero in itertools.product(chunks, cps, stages):
                    try:  # DeepSpeed refuses ZeRO-2/3 with pipelines; context parallelism needs fused attention
                        check_layout(shape, setup.replace(tp=tp, sp=sp, pp=pp, cp=cp, zero=zero, dp=1, microbatches=pp,
                                                          virtual_stages=v))
                    except FieldError:
                        continue
                    yield tp, sp, pp, v, cp, zero


def _states_fit(shape: ModelShape, setup: TrainingSetup, budget: int) -> bool:
    """Whether the parameters and optimizer state a GPU holds all step, at the family's
    most replicas (ZeRO shards them most), fit beside NCCL's memory: every moment holds
    them, so a family whose do not has no layout that fits."""
    first, last = stages(shape, setup.replace(dp=1))  # the family's shares, as _families checked them
    replicas = setup.dp * setup.cp
    nccl = nccl_bytes(setup.replace(dp=1))  # the family's fewest communicators: one replica
    return all(sum(held_states(shape, setup, stage.parameters, replicas)[::2]) + nccl <= budget
               for stage in (first, last))


def _replicas(sequences: int, tp: int, pp: int, cp: int, zero: int, question: Question) -> list[int]:
    """The data-parallel sizes a family may take: the divisors of the sequences. Over one
    replica ZeRO shards nothing: with any stage, stage 0 says the same; a stage the reader
    fixes must shard, unless one GPU holds everything."""
    return [d for d in divisors(sequences, MAX_PARALLEL)
            if not (zero > 0 and d * cp == 1 and (question.stage == "any" or tp * pp > 1))]


class _Judge:
    """Whether layouts fit, counting the layouts judged."""

    def __init__(self, shape: ModelShape, setup: TrainingSetup, budget: int, sequences: int, cap: int):
        self.shape, self.setup, self.budget, self.sequences, self.cap = shape, setup, budget, sequences, cap
        self.left = MAX_EVALUATIONS

    def layout(self, dp, tp, sp, pp, v, cp, zero, m) -> TrainingSetup:
        return self.setup.replace(tp=tp, sp=sp, pp=pp, cp=cp, dp=dp, zero=zero, microbatches=m,
                                  batch=self.sequences // dp // m, virtual_stages=v)

    def fits(self, setup: TrainingSetup) -> bool:
        try:  # a layout its framework does not run (FSDP2 with accumulation, say) does not fit
            check_framework(setup)
        except FieldError:
            return False
        if peak_floor(self.shape, setup) > self.budget:  # a lower bound of the peak: no need to judge it
            return False
        if self.left <= 0:
            raise _Exhausted
        self.left -= 1
        return peak_bytes(self.shape, setup) <= self.budget

    def fewest_micro_batches(self, dp, tp, sp, pp, v, cp, zero) -> Layout | None:
        """The best layout of `dp` replicas of the family that fits, or None: without a
        pipeline the fewest micro-batches (one, else the fewest of two or more: from two
        on the peak does not grow with their number, so a bisection finds it); with one,
        the most that fit (the least bubble), tried from the cap down: more micro-batches
        of fewer sequences hold less of each in flight, but PyTorch's schedules keep some
        tensors for every micro-batch (receive buffers, losses), so the peak need not fall
        with their number. An interleaved pipeline takes a multiple of pp micro-batches."""
        per_replica = self.sequences // dp
        counts = [m for m in quotient_divisors(self.sequences, dp, self.cap) if per_replica // m <= MAX_BATCH
                  and (v == 1 or m % pp == 0)]
        if not counts:
            return None
        make = lambda m: self.layout(dp, tp, sp, pp, v, cp, zero, m)  # noqa: E731
        accumulating = [m for m in counts if m > 1]
        if pp > 1:
            for m in reversed(counts):
                try:  # a layout its framework does not run (FSDP2 unsharded over replicas, say) does not fit
                    check_framework(make(m))
                except FieldError:
                    continue
                if peak_floor(self.shape, make(m)) > self.budget:
                    return None  # its floor holds a micro-batch's activations: fewer, larger ones only raise it
                if self.fits(make(m)):
                    return self._chosen(make(m))
            return None
        if counts[0] == 1 and self.fits(make(1)):
            return self._chosen(make(1))
        if not accumulating or not self.fits(make(accumulating[-1])):
            return None
        counts = accumulating
        low, high = 0, len(counts) - 1  # counts[high] fits; the fewest of them that does
        while low < high:
            middle = (low + high) // 2
            if self.fits(make(counts[middle])):
                high = middle
            else:
                low = middle + 1
        return self._chosen(make(counts[low]))

    def _chosen(self, chosen: TrainingSetup) -> Layout:
        check_layout(self.shape, chosen)
        return Layout(chosen, chosen.gpus, peak_bytes(self.shape, chosen), bubble(chosen),
                      sent_bytes(self.shape, chosen))
