"""TrainingSetup: how the model is trained (batch, precision, optimizer, which accounting)."""

from __future__ import annotations

from dataclasses import dataclass

from calc.cuda import ARCHES, DEFAULT_ARCH, MEASURED_ARCH
from calc.errors import FieldError, echo
from calc.layout.frameworks import FRAMEWORKS, keeps_gathered_inputs
from calc.layout.schedule import SCHEDULES
from calc.lora import ALL_LINEAR, FINETUNES, QUANT_TYPES, parse_targets
from calc.shape import check_whole

ACCOUNTINGS = ("seed", "cs336", "autograd", "megatron")
ATTENTION_KINDS = ("explicit", "flash")
CHECKPOINT_KINDS = ("none", "selective", "block")
DTYPES = ("fp32", "bf16", "bf16-master")
STATE_BYTES = {"fp32": (4, 4, 0), "bf16": (4, 4, 0), "bf16-master": (2, 2, 4)}
"""The precision regimes' bytes a parameter of (weights, gradients, master weights in the
optimizer): fp32; bf16 autocast over fp32 weights (PyTorch's torch.autocast: the same 4 + 4,
plus bf16 copies of the weight matrices); bf16 weights and gradients with an fp32 master
copy in the optimizer (DeepSpeed's and Megatron-LM's mixed precision, the ZeRO paper's
2 + 2 + 12 with AdamW)."""
OPTIMIZERS = ("adamw", "sgd", "adamw-8bit", "paged-adamw-8bit")
DEVICES = ("cuda", "cpu")
OPTIMIZER_IMPLS = ("default", "foreach", "fused", "for-loop")
DEFAULT_OPTIMIZER_IMPL = {"cuda": "foreach", "cpu": "for-loop"}
"""What torch.optim picks when neither foreach nor fused is given: foreach where every
parameter is on a device with foreach kernels (CUDA), else the for-loop
(torch/optim/optimizer.py, _default_to_fused_or_foreach; torch 2.13)."""

MAX_BATCH = 10**6
DEFAULT_NCCL = 512 * 2**20
"""NCCL's memory per communicator on a GPU, assumed (NCCL allocates it outside PyTorch's
caching allocator; it depends on the NCCL version, the channels, protocols and NVLink
SHARP): the low end of the 0.5-2 GB a communicator seen in practice. Set yours: the
drop in torch.cuda.mem_get_info()'s free memory across the first collective of each
process group."""
MAX_PARALLEL = 65536

CHOICES = {
    "accounting": ACCOUNTINGS,
    "attention": ATTENTION_KINDS,
    "checkpoint": CHECKPOINT_KINDS,
    "dtype": DTYPES,
    "optimizer": OPTIMIZERS,
    "optimizer_impl": OPTIMIZER_IMPLS,
    "device": DEVICES,
}
"""The allowed values of each of the setup's text fields."""
MAX_LORA_RANK = 65536
"""The largest LoRA rank (and alpha) calc takes."""
MAX_FROZEN_BLOCKS = 65536
"""The most frozen blocks calc takes (the model's layers bound it first)."""
LAYOUT_SIZES = ("dp", "tp", "pp", "virtual_stages", "cp", "microbatches")
"""The parallel layout's whole-number fields, each from 1 to MAX_PARALLEL."""
ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True)
class TrainingSetup:
    """One training step's setup.

    batch: sequences per step B (per GPU: the micro-batch, when training in parallel);
    accounting: which list of kept tensors to count ("seed", "cs336", "autograd" or
    "megatron"); attention: "explicit" (softmax kept) or "flash" (fused, only output and
    log-sum-exp kept); checkpoint: "none", "selective" (the attention core recomputed:
    nothing quadratic kept) or "block" (each block recomputed in backward); dtype: "fp32",
    "bf16" (autocast over fp32 weights) or "bf16-master" (bf16 weights, no autocast, an
    fp32 master copy in the optimizer; see STATE_BYTES); optimizer: "adamw" (two fp32 moments) or
    "sgd" (one fp32 momentum buffer); optimizer_impl: how its step runs, "foreach",
    "fused", "for-loop" or "default" (PyTorch's choice on the device); device: "cuda" (an
    NVIDIA GPU: CUDA's autocast op lists, attention kernels and dropout) or "cpu";
    keep_logits: the training loop holds the logits (`logits = model(x)`, then the loss)
    until the step ends, so they stay alive through backward and the optimizer step;
    arch: the GPU's compute capability ("sm90": H100, H200), which decides the attention
    kernel scaled_dot_product_attention runs on CUDA (calc.cuda.attention_kernel).

    Spreading training over GPUs (see calc.layout.per_gpu): dp data-parallel replicas with ZeRO
    stage `zero`; tp-way tensor parallelism, with sequence parallelism if `sp`; pp pipeline
    stages, each split into `virtual_stages` chunks under the interleaved 1F1B schedule (1:
not interleaved); cp-way context parallelism (ring attention: each of cp GPUs keeps 1/cp of
every sequence's tokens); `microbatches` micro-batches of `batch` sequences per replica
and step.

    `framework` runs the layout (calc.layout.frameworks: "auto", "ddp", "deepspeed", "megatron"),
    with its communication buffers, in values (elements) as its settings count them:
    DeepSpeed's reduce_bucket_size (5e8 by default) and stage3_prefetch_bucket_size (5e7);
    PyTorch DDP's buckets hold a second copy of the gradients unless
    gradient_as_bucket_view (`ddp_bucket_view`). `nccl`: bytes NCCL takes on a GPU for each
    communicator the layout needs (calc.layout.frameworks.communicators), outside PyTorch's
    allocator: an assumption the reader sets.

    `finetune` "lora" trains peft's LoRA adapters (calc.lora) of rank `lora_rank` on the
    `lora_targets` modules, with `lora_dropout` on their input, every other parameter
    frozen; `lora_alpha` scales their output (no memory). Under LoRA, dtype "bf16-master"
    means bf16 base weights with fp32 adapters (no master copy: nothing frozen steps).
    "qlora" holds the blocks' linear weights in bitsandbytes' 4 bits: `quant_type` "nf4" or
    "fp4" (the same bytes), `double_quant` its scales in 8 bits; or, `quant_type` "int8",
    in its 8-bit LLM.int8() (load_in_8bit); `prepare_kbit` is peft's
    prepare_model_for_kbit_training, which casts the rest of the base to fp32 (the model
    then computes in fp32 around its 4-bit matmuls). `optimizer` "adamw-8bit" and
    "paged-adamw-8bit" are bitsandbytes' over the adapters. Full fine-tuning may freeze the
    token embedding (`freeze_embeddings`) and the first `frozen_blocks` decoder layers
    (calc.frozen).
    """

    batch: int = 1
    accounting: str = "autograd"
    attention: str = "explicit"
    checkpoint: str = "none"
    dtype: str = "fp32"
    optimizer: str = "adamw"
    optimizer_impl: str = "default"
    device: str = "cuda"
    keep_logits: bool = False
    arch: str = DEFAULT_ARCH
    dp: int = 1
    zero: int = 0
    framework: str = "auto"
    tp: int = 1
    sp: bool = False
    pp: int = 1
    virtual_stages: int = 1
    schedule: str = "1f1b"
    cp: int = 1
    microbatches: int = 1
    reduce_bucket: int = 500_000_000
    prefetch_bucket: int = 50_000_000
    ddp_bucket_view: bool = False
    nccl: int = DEFAULT_NCCL
    finetune: str = "full"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str = ALL_LINEAR
    quant_type: str = "nf4"
    double_quant: bool = True
    prepare_kbit: bool = False
    freeze_embeddings: bool = False
    frozen_blocks: int = 0

    def __post_init__(self):
        check_whole("batch", self.batch, MAX_BATCH)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"{name} must be one of {', '.join(allowed)}, not {echo(getattr(self, name))}")
        for name in LAYOUT_SIZES:
            check_whole(name, getattr(self, name), MAX_PARALLEL)
        if self.arch not in ARCHES:
            raise FieldError("arch", f"arch must be one of {', '.join(ARCHES)}, not {echo(self.arch)}")
        if isinstance(self.zero, bool) or self.zero not in ZERO_STAGES:
            raise FieldError("zero", f"zero must be 0, 1, 2 or 3, not {echo(self.zero)}")
        if self.framework not in FRAMEWORKS:
            raise FieldError("framework", f"framework must be one of {', '.join(FRAMEWORKS)}, not {echo(self.framework)}")
        for name in ("reduce_bucket", "prefetch_bucket"):
            check_whole(name, getattr(self, name), 10**12)
        if isinstance(self.nccl, bool) or not isinstance(self.nccl, int) or not 0 <= self.nccl <= 10**15:
            raise FieldError("nccl", f"nccl must be a size from 0 bytes to a petabyte, not {echo(self.nccl)}")
        for name in ("sp", "keep_logits", "ddp_bucket_view", "double_quant", "prepare_kbit",
                     "freeze_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise FieldError(name, f"{name} must be true or false, not {echo(getattr(self, name))}")
        if self.finetune not in FINETUNES:
            raise FieldError("finetune", f"finetune must be one of {', '.join(FINETUNES)}, not {echo(self.finetune)}")
        if isinstance(self.frozen_blocks, bool) or not isinstance(self.frozen_blocks, int) \
                or not 0 <= self.frozen_blocks <= MAX_FROZEN_BLOCKS:
            raise FieldError("frozen_blocks", f"frozen_blocks must be a whole number from 0 to {MAX_FROZEN_BLOCKS:,}, "
                                              f"not {echo(self.frozen_blocks)}")
        if self.quant_type not in QUANT_TYPES:
            raise FieldError("quant_type", f"quant_type must be one of {', '.join(QUANT_TYPES)}, not "
                                           f"{echo(self.quant_type)}")
        for name in ("lora_rank", "lora_alpha"):
            check_whole(name, getattr(self, name), MAX_LORA_RANK)
        if isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, (int, float)) \
                or not 0 <= self.lora_dropout < 1:
            raise FieldError("lora_dropout", f"lora_dropout must be from 0 up to 1, not {echo(self.lora_dropout)}")
        if parse_targets(self.lora_targets) != self.lora_targets:
            raise FieldError("lora_targets", f"lora_targets must be written as {parse_targets(self.lora_targets)}")
        if self.sp and self.tp == 1:
            raise FieldError("sp", "sp (sequence parallelism) needs tp above 1")
        if self.virtual_stages > 1 and (self.pp == 1 or self.microbatches % self.pp):
            raise FieldError("virtual_stages", "the interleaved schedule needs pipeline stages (pp above 1) and a number "
                                               "of micro-batches that pp divides, as Megatron-LM requires")
        if self.schedule not in SCHEDULES:
            raise FieldError("schedule", f"schedule must be one of {', '.join(SCHEDULES)}, not {echo(self.schedule)}")
        if self.schedule != "1f1b" and self.virtual_stages > 1:
            raise FieldError("schedule", "interleaved stages run the 1F1B schedule: choose 1f1b, or virtual_stages 1")

    @property
    def parallel(self) -> bool:
        """Spread over more than one GPU, or in several micro-batches."""
        return (self.dp, self.tp, self.pp, self.cp, self.microbatches) != (1, 1, 1, 1, 1)

    def on_one_gpu(self) -> "TrainingSetup":
        """The same step on one GPU: the layout (replicas, splits, stages, micro-batches) undone."""
        return self.replace(dp=1, zero=0, framework="auto", tp=1, sp=False, pp=1, virtual_stages=1, cp=1,
                            microbatches=1)

    @property
    def keeps_gathered_inputs(self) -> bool:
        """Whether a tensor-parallel rank keeps its column-parallel linears' all-gathered
        inputs under sequence parallelism (calc.layout.frameworks.keeps_gathered_inputs)."""
        return keeps_gathered_inputs(self)

    @property
    def gpus(self) -> int:
        """GPUs the layout takes: dp · tp · pp · cp."""
        return self.dp * self.tp * self.pp * self.cp

    def in_flight(self) -> tuple[int, int]:
        """(chunks, micro-batches) the first pipeline stage holds at its fullest under 1F1B:
        min(pp, micro-batches) micro-batches of its pp-th of the layers; interleaved over v
        virtual stages, pp·v + pp − 1 chunks of 1/(pp·v) of the layers (Megatron-LM's
        1 + (pp − 1)/(pp·v) times pp micro-batches) and, of its embedding, that factor's
        ceiling in micro-batches."""
        p, v = self.pp, self.virtual_stages
        if v == 1:
            return min(p, self.microbatches) * v, min(p, self.microbatches)
        return p * v + p - 1, -(-(p * v + p - 1) // v)

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step across all replicas: dp · microbatches · batch."""
        return self.dp * self.microbatches * self.batch

    @property
    def step_impl(self) -> str:
        """The optimizer step's implementation as it runs: "foreach", "fused" or "for-loop"."""
        return DEFAULT_OPTIMIZER_IMPL[self.device] if self.optimizer_impl == "default" else self.optimizer_impl

    @property
    def device_name(self) -> str:
        """The device as a sentence names it, with how its figures are known: "CUDA on an
        sm90 card (measured on an H200)", "the CPU (measured)"."""
        if self.device == "cpu":
            return "the CPU (measured)"
        how = "measured on an H200" if self.arch == MEASURED_ARCH else "derived from PyTorch's source"
        return f"CUDA on an {self.arch} card ({how})"

    @property
    def bytes_per_value(self) -> int:
        """Bytes of one activation value in the compute dtype (4 for fp32, 2 for bf16; 4 for
        QLoRA's base prepared by prepare_model_for_kbit_training, its outputs fp32)."""
        return 4 if self.dtype == "fp32" or self.upcast_base else 2

    @property
    def stream_bytes(self) -> int:
        """Bytes of one value of the residual stream and the loss: 2 where the weights are
        bf16 (bf16-master, unless prepare_kbit cast them to fp32), else 4."""
        return 2 if self.dtype == "bf16-master" and not self.upcast_base else 4

    @property
    def freezes(self) -> bool:
        """Full fine-tuning with some of the model frozen (calc.frozen)."""
        return self.freeze_embeddings or self.frozen_blocks > 0

    @property
    def upcast_base(self) -> bool:
        """QLoRA whose base outside the 4-bit weights prepare_model_for_kbit_training cast to fp32."""
        return self.finetune == "qlora" and self.prepare_kbit

    def replace(self, **changes) -> "TrainingSetup":
        if not changes:
            return self
        if changes.keys() == {"batch"}:  # the usual change, and batch is checked alone: the rest stays valid
            check_whole("batch", changes["batch"], MAX_BATCH)
            copy = object.__new__(TrainingSetup)
            copy.__dict__.update(self.__dict__, batch=changes["batch"])
            return copy
        return TrainingSetup(**{**self.__dict__, **changes})  # the fields, as the dataclass stores them

    def as_dict(self) -> dict:
        return dict(self.__dict__)
