"""The order in which one pipeline stage runs its micro-batches' forward and backward
passes under PyTorch's schedules (torch.distributed.pipelining, torch 2.13,
torch/distributed/pipelining/schedules.py), and what each pass finds alive.

- **1F1B** (`Schedule1F1B._step_microbatches`, lines 1026-1174): stage k of p first runs
  min(m, p - k) forward passes, then alternates one backward and one forward until the
  forwards are done, then the remaining backwards.
- **GPipe** (`ScheduleGPipe._step_microbatches`, lines 878-960): all m forwards, then all
  m backwards.

calc.peak walks a stage's moments at the passes where it is fullest (`passes`: a few
dozen, however many micro-batches); calc.peak.pass_bytes at every pass (`every_pass`, a
simulation of the schedule's code), which validation/distributed.py --pp measures rank by
rank on CPU processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

SCHEDULES = {"1f1b": "1F1B", "gpipe": "GPipe"}
"""The pipeline schedules calc walks, with the names a sentence gives them."""


@dataclass(frozen=True)
class Pass:
    """One micro-batch's forward or backward pass on a stage, and what it finds alive:
    `others`, the micro-batches forwarded and not yet backwarded besides this one;
    `accumulated`, whether an earlier micro-batch's backward has made the gradients this
    one adds into; `losses`, the earlier micro-batches' losses the schedule holds (on the
    last stage: each forward's loss is kept until the step ends); `sent`, the finished
    micro-batches' outputs and input gradients still referenced by the schedule's send
    handles (waited, not yet dropped); `previous_output`, whether the schedule's `output`
    still references a finished micro-batch's output while this forward runs; `stage`, the
    stage's index (0 first); `after_backward`, whether the stage's pass before this one in
    the step was a backward (FSDP2 then finds every parameter gathered:
    calc.layout.frameworks.fsdp2_pipeline)."""

    kind: str  # "forward" or "backward"
    microbatch: int
    others: int
    accumulated: bool
    losses: int
    sent: int = 0
    previous_output: bool = False
    stage: int = 0
    after_backward: bool = False


@lru_cache(maxsize=1024)
def passes(stage: int, stages: int, microbatches: int, schedule: str) -> tuple[Pass, ...]:
    """The passes of stage `stage` (0 first) of `stages` at which the stage is at its
    fullest, in the order it runs them. Each stretch of the schedule (the warm-up's
    forwards, the steady state's backwards and forwards, the cool-down's backwards) holds
    what its passes find alive in amounts affine in the micro-batch's number, so each
    stretch is at its fullest at one of its ends: these are its ends, and the passes where
    what the send handles hold changes (every_pass has them all; tests/engine/test_schedule.py
    checks the two agree). A few dozen passes, however many micro-batches."""
    last, first = stage == stages - 1, stage == 0
    m = microbatches
    out = []

    def add(kind, j, others, accumulated, losses, sent, previous=False, after_backward=False):
        out.append(Pass(kind, j, others, accumulated, losses if last else 0, sent, previous, stage, after_backward))

    if schedule == "gpipe":
        held = (not last) + (not first)  # each finished micro-batch's output and input gradient
        for j in _within({0, 1, m - 1}, 0, m):
            add("forward", j, j, False, j, 0)
        for j in _within({0, 1, m - 1}, 0, m):
            add("backward", j, m - j - 1, j > 0, m - 1, j * held, after_backward=j > 0)
        return tuple(out)
    w = min(m, stages - stage)
    for j in _within({0, 1, w - 1}, 0, w):
        add("forward", j, j, False, j, 0)
    steady = m - w  # backward-forward pairs

    def warmup_send(b_done: int) -> int:  # the warm-up's last fired forward send, once its micro-batch is done
        return int(not last and w >= 2 and b_done > w - 2)

    for b in _within({0, 1, w - 2, w - 1, w, steady - 1}, 0, steady):
        add("backward", b, w - 1, b > 0, b + w - 1, warmup_send(b) + int(not first and b >= 1))
        add("forward", b + w, w - 1, True, b + w, warmup_send(b + 1) + int(not first), w == 1, True)
    add("backward", steady, w - 1, steady > 0, m - 1, warmup_send(steady) + int(not first and steady >= 1))
    for b in _within({steady + 1, m - 1}, steady + 1, m):
        add("backward", b, m - b - 1, True, m - 1, int(not first), after_backward=True)
    return tuple(out)


@lru_cache(maxsize=1024)
def fullest(stage: int, stages: int, microbatches: int, schedule: str, gathering: bool = False) -> tuple[Pass, ...]:
    """Of `passes`, those no other pass of the same kind outdoes: one finds at least as
    many micro-batches in flight, sent handles and losses alive (each adds bytes), with the
    same gradients made or not, the same finished output named, and autocast's cache as
    full (and of passes that find the same, the first); with `gathering` (FSDP2), the same
    pass before it. The peak is at one of them; the solver walks only these."""
    run = passes(stage, stages, microbatches, schedule)

    def kind(p: Pass) -> tuple:
        return p.kind, p.accumulated, p.previous_output, p.microbatch > 0, p.after_backward and gathering

    def outdone(p: Pass) -> bool:
        return any(q != p and kind(q) == kind(p) and (q.others, q.sent, q.losses) != (p.others, p.sent, p.losses)
                   and q.others >= p.others and q.sent >= p.sent and q.losses >= p.losses for q in run)
    kept = {}
    for p in run:  # of passes that find the same alive, the first
        if not outdone(p):
            kept.setdefault((kind(p), p.others, p.sent, p.losses), p)
    return tuple(kept.values())


def _within(numbers: set, start: int, stop: int) -> list:
    """Those of `numbers` from `start` up to (not including) `stop`, in order."""
    return sorted(n for n in numbers if start <= n < stop)


@lru_cache(maxsize=1024)
def every_pass(stage: int, stages: int, microbatches: int, schedule: str) -> tuple[Pass, ...]:
    """Every pass of stage `stage` (0 first) of `stages`, in the order it runs them,
    simulated: what the schedule's code references at each (one per micro-batch and
    direction: the validation compares each with a measurement)."""
    return tuple(_simulated(stage, stages, microbatches, schedule).passes[:-1])


@lru_cache(maxsize=1024)
def reduce_pass(stage: int, stages: int, microbatches: int, schedule: str) -> Pass:
    """What the stage holds once its last backward is done, as the schedule reduces the
    gradients (`perform_reduce_grad`), as a pass of kind "reduce"."""
    return _simulated(stage, stages, microbatches, schedule).passes[-1]


@lru_cache(maxsize=1024)
def _simulated(stage: int, stages: int, microbatches: int, schedule: str) -> _Run:
    run = _Run(stage, stage == stages - 1)
    if schedule == "gpipe":
        _gpipe(run, microbatches)
    else:
        _one_f_one_b(run, min(microbatches, stages - stage), microbatches)
    run._record("reduce", microbatches, 0)
    return run


class _Run:
    """A stage's passes as its schedule runs them, with the tensors the schedule's send
    handles reference: ("output", j) a micro-batch's output sent on, ("gradient", j) its
    input's gradient sent back."""

    def __init__(self, stage: int, last: bool):
        self.stage, self.first, self.last = stage, stage == 0, last
        self.forwarded = self.backwarded = 0
        self.passes: list[Pass] = []
        self.handles: dict[str, list] = {}
        self.output_of: int | None = None  # the micro-batch whose output the schedule's `output` references
        self.backward_last = False  # whether the pass before was a backward

    def forward(self, j: int) -> None:
        self._record("forward", j, self.forwarded - self.backwarded)
        self.forwarded += 1
        self.output_of = j

    def backward(self, j: int) -> None:
        self._record("backward", j, self.forwarded - self.backwarded - 1)
        self.backwarded += 1

    def output(self, j: int) -> list:
        return [] if self.last else [("output", j)]

    def gradient(self, j: int) -> list:
        return [] if self.first else [("gradient", j)]

    def _record(self, kind: str, j: int, others: int) -> None:
        referenced = {ref for refs in self.handles.values() for ref in refs}
        # a finished micro-batch's output, or any gradient sent back, is held only by a handle
        sent = sum(1 for what, k in referenced if what == "gradient" or k < self.backwarded)
        previous = kind == "forward" and self.output_of is not None and self.output_of < self.backwarded
        self.passes.append(Pass(kind, j, others, self.backwarded > 0,
                                self.forwarded - (kind == "backward") if self.last else 0, sent, previous,
                                self.stage, self.backward_last))
        self.backward_last = kind == "backward"


def _gpipe(run: _Run, m: int) -> None:
    """ScheduleGPipe (schedules.py lines 904-955): the forward sends' handles are kept in
    one list until all forwards are done and the backward sends' until the step ends."""
    sends = []
    for j in range(m):
        run.forward(j)
        sends += run.output(j)
        run.handles["forward sends"] = list(sends)
    backward_sends = []
    for j in range(m):
        run.backward(j)
        backward_sends += run.gradient(j)
        run.handles["backward sends"] = list(backward_sends)


def _one_f_one_b(run: _Run, warmup: int, m: int) -> None:
    """Schedule1F1B (schedules.py lines 1051-1172): `send_work` keeps the handles of the
    last forward send of the warm-up until the steady state ends, then of each backward
    send until the next; `fwd_sends` and `bwd_sends` reference the latest ones."""
    f = b = 0
    for _ in range(warmup):
        run.forward(f)
        run.handles["fwd_sends"] = run.output(f)
        if f != warmup - 1:
            run.handles["send_work"] = run.output(f)
        f += 1
    while True:
        run.backward(b)
        run.handles["bwd_sends"] = run.gradient(b)
        b += 1
        if f == m:
            break
        run.forward(f)
        run.handles["fwd_sends"] = run.output(f)
        f += 1
    run.handles["send_work"] = run.gradient(b - 1)
    while b < m:
        run.backward(b)
        run.handles["bwd_sends"] = run.gradient(b)
        run.handles["send_work"] = run.gradient(b)
        b += 1
