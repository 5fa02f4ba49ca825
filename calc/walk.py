"""The bytes alive as a program of ops runs, op by op: the machinery of calc's walks.

A walk holds named tensors, each with its size and its holders (the nodes that saved it,
the code that still refers to it); a tensor is freed when its last holder lets go. After
every op that makes a tensor the bytes alive are a point of the walk. Sizes are `Line`s in
the batch, bytes = per_sequence · B + constant, so one walk serves every batch size: its
height at B is the highest of its points' lines there.

The programs walked are calc.forward's (a block's forward pass, and its recomputation
under checkpointing) and calc.backward's (the loss, head, blocks and embeddings in
backward).
"""

from __future__ import annotations

from dataclasses import dataclass

from calc.activations.autograd import layer_norm_stats_bytes
from calc.setup import TrainingSetup
from calc.shape import ModelShape

FP32 = 4


@dataclass(frozen=True)
class Line:
    """Bytes for B sequences: per_sequence · B + constant."""

    per_sequence: int
    constant: int = 0

    def __add__(self, other: "Line") -> "Line":
        return Line(self.per_sequence + other.per_sequence, self.constant + other.constant)

    def __sub__(self, other: "Line") -> "Line":
        return Line(self.per_sequence - other.per_sequence, self.constant - other.constant)

    def at(self, batch: int) -> int:
        return self.per_sequence * batch + self.constant


ZERO = Line(0)


class Walk:
    """The bytes alive as a program of ops runs: tensors made and dropped by name, each
    freed once its last holder lets go; the live bytes after every op that makes one."""

    def __init__(self):
        self.live = ZERO
        self._sizes: dict[str, Line] = {}
        self.baseline = ZERO  # what the part saved, alive when the walk starts
        self.points: list[Line] = []
        self.above: list[tuple[Line, ...]] = []  # at each point, the tensors alive beyond the baseline's
        self.at = ""  # the op the program is in, as a sentence names it
        self.where: list[str] = []  # that, at each point
        self.rises = None  # (points, rises) once worked out
        self._holders: dict[str, int] = {}
        self._aliases: dict[str, str] = {}
        self._count = 0

    @property
    def baseline(self) -> Line:
        return self._baseline

    @baseline.setter
    def baseline(self, live: Line) -> None:
        """What the part saved: the tensors alive now."""
        self._baseline = live
        self._baseline_names = frozenset(self._sizes)

    def _point(self) -> None:
        self.points.append(self.live)
        self.where.append(self.at)
        self.above.append(tuple(size for name, size in self._sizes.items() if name not in self._baseline_names))

    def name(self, stem: str) -> str:
        """A fresh name for a tensor made from `stem`."""
        self._count += 1
        return f"{stem}#{self._count}"

    def have(self, name: str, size: Line, holders: int = 1) -> None:
        """A tensor alive before the walk starts (kept for backward, or a gradient handed in)."""
        self._add(name, size, holders)

    def make(self, name: str, size: Line, holders: int = 1) -> None:
        """An op makes a tensor; the bytes alive after it are a point of the walk."""
        self._add(name, size, holders)
        self._point()

    def make_together(self, *made: tuple[str, Line]) -> None:
        """One op makes several tensors (a fused kernel's gradients): one point, after all."""
        for name, size in made:
            self._add(name, size, 1)
        self._point()

    def hold(self, name: str, more: int = 1) -> None:
        """More holders of a tensor already alive (a gradient handed to two nodes)."""
        self._holders[self._aliases.get(name, name)] += more

    def drop(self, *names: str) -> None:
        """Each name's holder lets go; the tensor is freed when it was the last."""
        for name in names:
            if name is None:
                continue
            name = self._aliases.get(name, name)
            self._holders[name] -= 1
            if self._holders[name] == 0:
                self.live -= self._sizes.pop(name)
                del self._holders[name]

    def alive(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._sizes

    def alias(self, name: str, existing: str) -> None:
        """`name` is another name of the tensor `existing` (a saved tensor that is also an
        op's output under its own name)."""
        self._aliases[name] = existing

    def _add(self, name: str, size: Line, holders: int) -> None:
        if name in self._sizes:
            raise ValueError(f"{name} is alive already")
        self._sizes[name] = size
        self._holders[name] = holders
        self.live += size

    def left(self) -> tuple[str, ...]:
        """The tensors still alive."""
        return tuple(self._sizes)

    def most(self) -> tuple[Line, ...]:
        """The points, leaving out each that another is at least as high as for every batch."""
        return _undominated(self.points)


def _undominated(points) -> tuple[Line, ...]:
    """Of `points`, those no other is at least as high as for every batch."""
    kept: list[Line] = []
    for p in sorted(set(points), key=lambda p: (p.per_sequence, p.constant), reverse=True):
        if not any(q.per_sequence >= p.per_sequence and q.constant >= p.constant for q in kept):
            kept.append(p)
    return tuple(kept)


@dataclass(frozen=True)
class Sizes:
    """A GPU's sizes for the walk, in values per sequence (s tokens) or per tensor, and the
    bytes a value takes: a in the compute dtype, n in the residual stream (fp32 but for a
    model cast to bf16), `stats` in LayerNorm's mean and 1/σ."""

    s: int
    d: int
    h: int
    h_kv: int
    d_h: int
    d_ff: int
    vocab: int
    a: int
    n: int
    stats: int  # bytes of a value of LayerNorm's mean and 1/σ (fp32 on CUDA)
    cast: bool  # bf16 autocast: linear layers and attention cast their fp32 inputs to bf16
    batched: bool  # more than one sequence (explicit attention copies some views to fold the batch)
    accumulating: bool  # each new parameter gradient is added into a held one, then freed
    reduce_copies: bool = False  # tensor parallelism all-reduces W_O's and W2's partial sums into new tensors
    gathers: bool = False  # DTensor's sequence parallelism: the stream split by tokens, gathered for the linears
    megatron_sp: bool = False  # Megatron-LM's sequence parallelism: the stream split by tokens, gathered in a buffer
    gradient_held: bool = False  # the gradient of the block's output is held outside the walk (a pipeline's receive buffer)
    copies_held: bool = False  # autocast's cache holds every bf16 weight copy outside the walk, made before it
    s_l: int = 0  # the residual stream's tokens on this GPU: s, or s/t under either sequence parallelism
    loss_parallel: bool = False  # DTensor's vocabulary-parallel loss: NLL's backward makes log-softmax's gradient
    table_casts: int = 0  # bytes of FSDP2's bf16 casts of the block's RoPE tables, which RoPE keeps

    def per(self, values: int, size: int) -> Line:
        """`values` per sequence of `size` bytes each."""
        return Line(values * size)

    @staticmethod
    def fixed(values: int, size: int) -> Line:
        """`values` of `size` bytes each, whatever the batch (a weight's gradient)."""
        return Line(0, values * size)

    def copy(self, values: int) -> Line:
        """A bf16 copy of a weight (or bias) of `values` values, as the walk counts it: none
        where autocast's cache made it before the walk (`copies_held`)."""
        return Line(0) if self.copies_held else Line(0, 2 * values)


def sizes(shape: ModelShape, setup: TrainingSetup, accumulating: bool, reduce_copies: bool = False,
          gathers: bool = False, loss_parallel: bool = False, megatron_sp: bool = False,
          gradient_held: bool = False, copies_held: bool = False, table_casts: int = 0) -> Sizes:
    """One GPU's sizes: its tensor-parallel share of the heads, the feed-forward width and
    the vocabulary, its context-parallel share of the tokens; `reduce_copies`:
    calc.layout.frameworks.reduces_into_copies; `gathers`: calc.layout.frameworks.keeps_gathered_inputs
    (the stream's share of the tokens, s/t); `loss_parallel`: calc.layout.frameworks.runs_dtensor;
    `gradient_held`: the gradient of a block's output arrives in memory held outside the
    walk (PyTorch's pipeline receive buffer, on a stage before the last); `copies_held`:
    autocast's cache made every bf16 weight copy before the walk and keeps them past it
    (autocast around a pipeline's whole step, from its second pass on); `table_casts`: the
    bytes of FSDP2's bf16 casts of a block's RoPE tables (calc.layout.frameworks.fsdp2_buffers.input_casts),
    which the block keeps (made again as a checkpointed block reruns) until RoPE's backward."""
    t = setup.tp
    s = -(-shape.context // setup.cp)
    return Sizes(s=s, s_l=-(-s // t) if gathers or megatron_sp else s, gathers=gathers, megatron_sp=megatron_sp,
                 loss_parallel=loss_parallel, d=shape.d_model, h=-(-shape.heads // t),
                  h_kv=-(-shape.kv_heads // t), d_h=shape.d_head, d_ff=-(-shape.d_ff // t), vocab=-(-shape.vocab // t),
                  a=setup.bytes_per_value, n=2 if setup.dtype == "bf16-master" else FP32,
                  stats=layer_norm_stats_bytes(setup), cast=setup.dtype == "bf16",
                  batched=setup.batch > 1, accumulating=accumulating, reduce_copies=reduce_copies,
                  gradient_held=gradient_held, copies_held=copies_held, table_casts=table_casts)


def weight_matrices(shape: ModelShape, z: Sizes) -> dict[str, int]:
    """A block's weight matrices by name, in values on this GPU."""
    q, kv = z.h * z.d_h, z.h_kv * z.d_h
    matrices = {"q": z.d * q, "k": z.d * kv, "v": z.d * kv, "o": q * z.d, "w1": z.d * z.d_ff, "w2": z.d_ff * z.d}
    if shape.ffn == "swiglu":
        matrices["w3"] = z.d * z.d_ff
    return matrices


@dataclass(frozen=True)
class AttentionSaved:
    """What the attention core keeps, beyond Q, K and V, as its activation rows say: P in
    fp32 and a bf16 copy for P·V (CUDA autocast), the fused kernel's own output (which a
    copy for W_O follows), its log-sum-exp (bytes per sequence)."""

    fp32_softmax: bool = False
    flash_output: bool = False
    logsumexp: Line = ZERO

    @classmethod
    def of(cls, rows: dict[str, tuple[int, int]]) -> "AttentionSaved":
        return cls("probabilities-bf16" in rows, "flash-output" in rows, Line(rows.get("logsumexp", (0, 0))[0]))


def highest_at(walk: Walk, batch: int) -> str:
    """The op of the walk's highest point for `batch` sequences (the first, if several)."""
    return walk.where[_highest(walk, batch)]


def tensors_above_at(walk: Walk, batch: int) -> tuple[int, ...]:
    """The bytes of each tensor alive beyond what the part saved, at the walk's highest
    point for `batch` sequences (what the caching allocator rounds, one block each)."""
    return tuple(size.at(batch) for size in walk.above[_highest(walk, batch)])


def _highest(walk: Walk, batch: int) -> int:
    heights = [point.at(batch) for point in walk.points]
    return heights.index(max(heights))


def rises_where(walk: Walk, keep) -> tuple[Line, ...]:
    """How far above what the part saved the walk rises at its highest points among those
    whose op `keep` (a predicate on the op's name, Walk.at) accepts; (Line(0),) if none."""
    kept = _undominated(point for point, at in zip(walk.points, walk.where) if keep(at))
    return tuple(point - walk.baseline for point in kept) or (ZERO,)


def rises(walk: Walk) -> tuple[Line, ...]:
    """How far above what the part saved the walk rises, at each of its highest points
    (worked out once a walk)."""
    if walk.rises is None or walk.rises[0] != len(walk.points):
        walk.rises = (len(walk.points), tuple(point - walk.baseline for point in walk.most()))
    return walk.rises[1]
