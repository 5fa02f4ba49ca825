"""The field registry: every input calc takes, declared once.

A field's name is its key everywhere: the URL's `?d_model=`, the form's `name="d_model"`,
the CLI's `--d-model`, the attribute of ModelShape or TrainingSetup it sets. The parser
(calc.inputs), the CLI (calc.cli), the inputs panel (calc.site.form) and the browser (which
gets the list from calc) all read this table. The allowed values of a choice are the
engine's own (calc.shape.CHOICES, calc.setup.CHOICES); this table adds what a reader sees:
labels, help, the group a field is shown in.

Adding an input: a Field here, and the code that uses its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from calc.cuda import ARCHES
from calc.errors import FieldError, echo
from calc.gpus import DEFAULT_FRAGMENTATION, DEFAULT_GPU, DEFAULT_RESERVE, GPUS
from calc.hf_config import params_from_hf_config
from calc.layout.frameworks import FRAMEWORKS
from calc.layout.schedule import SCHEDULES
from calc.lora import GPT2_MODULES, LLAMA_MODULES, REFERENCE_MODULES, parse_targets
from calc.layout.solver import FSDP_STAGES
from calc.presets import DEFAULT_PRESET, PRESETS
from calc.setup import CHOICES as SETUP_CHOICES
from calc.setup import MAX_FROZEN_BLOCKS, MAX_LORA_RANK
from calc.setup import DEFAULT_NCCL, MAX_BATCH, MAX_PARALLEL, ZERO_STAGES, TrainingSetup
from calc.shape import CHOICES as SHAPE_CHOICES
from calc.shape import FLAGS as SHAPE_FLAGS
from calc.shape import MAX_SIZE, SIZES
from calc.units import parse_size_as_typed, size_text

GROUPS = {
    "model": "Model",
    "config": "Or paste a Hugging Face config.json",
    "architecture": "Architecture: feed-forward, norm, positions, biases, tying",
    "implementation": "Implementation: whose code, activation, dropout, cache",
    "step": "Training step",
    "finetune": "Fine-tuning: LoRA",
    "compare": "Setup B, to compare",
    "claim": "The claim to explain",
    "parallel": "Across GPUs (batch above is the micro-batch per GPU)",
    "solver": "The question: the fewest GPUs for this step",
    "buffers": "Communication buffers (NCCL, DeepSpeed, DDP)",
    "gpu": "GPU",
}
"""Each group's legend, in the order the inputs panel shows them."""

MAX_DIGITS = 24
"""The longest whole number accepted, in characters (grouping commas included)."""
_WHOLE = re.compile(r"[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?:_[0-9]{3})+")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Field:
    """One input. kind: "whole" (a count from 1 to `limit`), "whole_or_none" (the same, or
    "none"), "choice" (one of `choices`, pairs of value and label), "flag" (true or
    false), "probability" (a decimal from 0 up to 1), "percent" (a share from 0 to 50 %,
    kept exact as a Fraction), "size" (bytes, typed as '80 GB'), "modules" (LoRA's target
    modules: all-linear, or names separated by commas), "json"
    (a Hugging Face config.json, which stands for the fields it sets; not `in_link`: a link
    carries those fields instead).
    target: where the value goes — "shape", "setup", "compare" (setup B, the name less
    its b_ prefix), "question" (the solver's constraints, calc.layout.solver.Question; the name
    less a solve_ prefix) or "inputs" (preset, budget, unit, claim, and the fsdp alias,
    whose group "aliases" no panel shows)."""

    name: str
    group: str
    kind: str
    label: str
    help: str
    target: str
    choices: tuple = ()
    limit: int = 0
    cast: type = str
    in_link: bool = True
    minimum: int = 1  # a size's least bytes, a whole number's least value

    @property
    def flag(self) -> str:
        """The CLI's flag: d_model -> --d-model."""
        return "--" + self.name.replace("_", "-")

    @cached_property  # read for every field at every recompute
    def attribute(self) -> str:
        """The ModelShape, TrainingSetup or Question attribute the field sets."""
        if self.target == "compare":
            return self.name[2:]
        return self.name.removeprefix("solve_").replace("zero", "stage") if self.target == "question" else self.name

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.choices)

    def parse(self, text):
        """The field's value from the text a reader typed; FieldError naming the field."""
        text = str(text).strip()
        if self.kind == "whole":
            return _whole(self.name, text, self.limit, self.minimum)
        if self.kind == "whole_or_none":
            return None if text.lower() in ("", "none") else _whole(self.name, text, self.limit)
        if self.kind == "probability":
            return _probability(self.name, text)
        if self.kind == "percent":
            return _percent(self.name, text)
        if self.kind == "json":
            return params_from_hf_config(text)
        if self.kind == "modules":
            return parse_targets(text)
        if self.kind == "choice":
            if text not in self.values:
                raise FieldError(self.name, f"{self.name} must be one of {', '.join(v for v in self.values if v)}, "
                                            f"not {echo(text)}")
            return self.cast(text)
        if self.kind == "flag":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise FieldError(self.name, f"{self.name} must be true or false, not {echo(text)}")
        try:
            return parse_size_as_typed(text, least=self.minimum)
        except ValueError as e:
            raise FieldError(self.name, f"{self.name}: {e}") from None

    def text(self, value) -> str:
        """The value as the field shows it (the inverse of parse)."""
        if type(value) is str:  # most fields, at every recompute: before the slower checks
            return value
        if isinstance(value, bool) or value is None:
            return str(value).lower()
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, Fraction):  # a percentage of at most two decimals: exact as a float
            return f"{float(value):g} %"
        if self.kind == "size" and isinstance(value, int):  # a setup's size, in bytes
            return size_text(value)
        return str(value)


def _whole(name: str, text: str, limit: int, least: int = 1) -> int:
    """A whole number from `least` (1, or 0 for a count that may be none) to `limit`: plain
    digits, or thousands grouped by commas or underscores in threes ('4,096'); a comma
    anywhere else is an error, not ignored."""
    if not _WHOLE.fullmatch(text):
        hint = " (commas only between groups of three digits, as in 4,096)" if "," in text else ""
        raise FieldError(name, f"{name} must be a whole number{hint}, not {echo(text)}" if text
                         else f"{name} needs a whole number")
    if len(text) > MAX_DIGITS:  # before int(), which refuses numbers of over 4,300 digits
        raise FieldError(name, f"{name} must be between {least} and {limit:,}, not a {len(text):,}-character number")
    value = int(text.replace(",", "").replace("_", ""))
    if not least <= value <= limit:
        raise FieldError(name, f"{name} must be between {least} and {limit:,}, not {value:,}")
    return value


_DECIMAL = re.compile(r"[+-]?(?:[0-9]*\.?[0-9]+|[0-9]+\.)(?:[eE][+-]?[0-9]{1,3})?")


def _probability(name: str, text: str) -> float:
    """A probability typed as a decimal ('0.1', '.05', '0', '1e-05', as JSON writes it): from
    0 up to, not including, 1; -0 is 0."""
    if len(text) > MAX_DIGITS or not _DECIMAL.fullmatch(text):
        raise FieldError(name, f"{name} must be a decimal from 0 up to 1, such as 0.1, not {echo(text)}")
    value = float(text) + 0.0
    if not 0 <= value < 1:
        raise FieldError(name, f"{name} must be from 0 up to 1, not {text}")
    return value


_PERCENT = re.compile(r"([0-9]{1,2}(?:\.[0-9]{1,2})?)\s*%?")
MAX_PERCENT = 50


def _percent(name: str, text: str) -> Fraction:
    """A share typed in percent ('5', '5 %', '2.5%'), from 0 to 50 %, as an exact Fraction."""
    m = _PERCENT.fullmatch(text)
    if not m:
        raise FieldError(name, f"{name} must be a percentage from 0 to {MAX_PERCENT} %, such as 5 %, not {echo(text)}")
    value = Fraction(m.group(1))
    if value > MAX_PERCENT:
        raise FieldError(name, f"{name} must be at most {MAX_PERCENT} %, not {m.group(1)} %")
    return value


def _labelled(values, labels: dict[str, str]) -> tuple:
    """(value, label) pairs for the engine's `values`; every value must have a label."""
    missing = set(values) - set(labels)
    assert not missing, f"no label for {missing}"
    return tuple((v, labels[v]) for v in values)


_NO_YES = (("false", "no"), ("true", "yes"))
_SIZE_LABELS = {"vocab": "Vocabulary V", "context": "Context s (tokens)", "layers": "Layers L", "d_model": "d_model",
                "heads": "Heads h", "kv_heads": "KV heads h_kv", "d_ff": "d_ff", "max_positions": "Learned positions n_pos"}
_SIZE_HELP = {"vocab": "vocabulary size", "context": "sequence length in tokens", "layers": "transformer blocks",
              "d_model": "residual width", "heads": "attention heads", "kv_heads": "key/value heads (fewer: GQA)",
              "d_ff": "feed-forward width", "max_positions": "rows of a learned position table"}
_SHAPE_LABELS = {
    "ffn": ("Feed-forward", "feed-forward kind", {"swiglu": "SwiGLU", "gelu": "GELU MLP"}),
    "norm": ("Norm", "normalisation", {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}),
    "positions": ("Positions", "position encoding", {"rope": "RoPE", "learned": "learned"}),
}
_FLAG_LABELS = {"bias": ("Biases", "linear layers and norms have biases"),
                "tied": ("Tied embeddings", "the LM head reuses the token embedding"),
                "use_cache": ("Keys and values returned (use_cache)", "the model returns a cache of keys and values"),
                "fused_qkv": ("Fused Q/K/V projection", "one linear layer makes Q, K and V (GPT-2's c_attn)"),
                "qkv_bias": ("Q/K/V biases", "Q, K and V projections have biases (Qwen2)")}
_FLAG_GROUP = {"bias": "architecture", "tied": "architecture", "qkv_bias": "architecture", "fused_qkv": "implementation",
               "use_cache": "implementation"}
_STEP_LABELS = {
    "accounting": ("Accounting", "which list of kept tensors to count",
                   {"seed": "the seed's list", "cs336": "CS336 list", "autograd": "what autograd keeps",
                    "megatron": "Korthikanti et al. (Megatron)"}),
    "attention": ("Attention", "softmax kept, or fused attention",
                  {"explicit": "explicit (softmax kept)", "flash": "flash (fused)"}),
    "checkpoint": ("Checkpointing", "what is recomputed in backward",
                   {"none": "none", "selective": "selective (attention core)", "block": "every block"}),
    "dtype": ("Precision", "fp32; bf16 autocast over fp32 weights (4+4+8 bytes, plus bf16 copies); or bf16 "
              "weights with an fp32 master copy in the optimizer (2+2+12)",
              {"fp32": "fp32", "bf16": "bf16 autocast (fp32 weights)", "bf16-master": "bf16 weights, fp32 master"}),
    "optimizer": ("Optimizer", "optimizer state per parameter",
                  {"adamw": "AdamW", "sgd": "SGD with momentum", "adamw-8bit": "AdamW 8-bit (bitsandbytes)",
                   "paged-adamw-8bit": "paged AdamW 8-bit"}),
    "optimizer_impl": ("Optimizer step", "how torch.optim runs the step: its temporaries (PyTorch's default: "
                       "foreach on CUDA, the for-loop on the CPU)",
                       {"default": "PyTorch's default", "foreach": "foreach",
                        "fused": "fused", "for-loop": "for-loop"}),
    "device": ("Device", "an NVIDIA GPU (CUDA's autocast lists and kernels) or the CPU",
               {"cuda": "CUDA (NVIDIA GPU)", "cpu": "CPU"}),
}


def _step_fields(prefix: str, group: str, target: str) -> tuple[Field, ...]:
    """The training step's fields; setup B's are the same, named b_batch, b_dtype, …"""
    out = [Field(prefix + "batch", group, "whole", "Batch B (sequences)", "sequences per step", target, limit=MAX_BATCH)]
    for name, allowed in SETUP_CHOICES.items():
        label, help_text, labels = _STEP_LABELS[name]
        out.append(Field(prefix + name, group, "choice", label, help_text, target, _labelled(allowed, labels)))
    out.append(Field(prefix + "keep_logits", group, "flag", "Logits held through backward",
                     "the loop keeps `logits = model(x)` referenced until the step ends", target, _NO_YES))
    return tuple(out)


_ZERO_LABELS = {"0": "0: none (DDP)", "1": "1: optimizer state", "2": "2: + gradients", "3": "3: + parameters"}
"""Short enough to read in full in a phone's field; the help text gives FSDP's names."""
_LAYOUT_LABELS = {"dp": ("Data-parallel replicas dp", "data-parallel replicas"),
                  "tp": ("Tensor-parallel size tp", "tensor-parallel size"),
                  "pp": ("Pipeline stages pp", "pipeline stages"),
                  "virtual_stages": ("Virtual stages v", "chunks each pipeline stage is split into (interleaved 1F1B); 1: "
                                                         "not interleaved"),
                  "microbatches": ("Micro-batches per step", "micro-batches per step and replica"),
                  "cp": ("Context-parallel size cp", "GPUs splitting each sequence's tokens (ring attention)")}

FIELDS: tuple[Field, ...] = (
    Field("preset", "model", "choice", "Model preset", "published shape to start from", "inputs",
          tuple((name, name) for name in PRESETS)),
    Field("hf_config", "config", "json", "config.json",
          "model types gpt2, llama, mistral, qwen2: sets the shape and the code (fields set here win)", "inputs",
          in_link=False),
    *(Field(name, "architecture" if name == "max_positions" else "model", "whole", _SIZE_LABELS[name],
            f"{_SIZE_HELP[name]} (default: the preset's)", "shape", limit=MAX_SIZE) for name in SIZES),
    *(Field(name, "architecture", "choice", label, f"{help_text} (default: the preset's)", "shape",
            _labelled(SHAPE_CHOICES[name], labels)) for name, (label, help_text, labels) in _SHAPE_LABELS.items()),
    *(Field(name, "architecture", "flag", *_FLAG_LABELS[name], "shape", _NO_YES) for name in SHAPE_FLAGS
      if _FLAG_GROUP[name] == "architecture"),
    Field("implementation", "implementation", "choice", "Implementation", "whose code runs the model "
          "(default: the preset's)", "shape", _labelled(SHAPE_CHOICES["implementation"], {
              "reference": "reference (nn.functional)", "scratch": "from scratch (CS336 rules)",
              "hf": "Hugging Face transformers"})),
    Field("activation", "implementation", "choice", "Activation", "the feed-forward's function (default: the "
          "preset's)", "shape", _labelled(SHAPE_CHOICES["activation"], {
              "silu": "SiLU", "gelu": "GELU (erf)", "gelu_tanh": "GELU, tanh form", "gelu_new": "gelu_new (GPT-2)"})),
    Field("softmax", "implementation", "choice", "Softmax, from scratch", "how a from-scratch model subtracts the "
          "row max", "shape", _labelled(SHAPE_CHOICES["softmax"], {
              "max": "x.max(dim).values", "amax": "torch.amax", "max-detached": "max of x.detach()"})),
    Field("cross_entropy", "implementation", "choice", "Cross-entropy, from scratch", "how a from-scratch model "
          "writes the loss", "shape", _labelled(SHAPE_CHOICES["cross_entropy"], {
              "logsumexp": "logits − logsumexp", "manual": "max, exp, sum, log", "amax-manual": "amax, exp, sum, log"})),
    Field("pick", "implementation", "choice", "Target pick, from scratch", "how a from-scratch model picks the "
          "target's log-probability", "shape", _labelled(SHAPE_CHOICES["pick"], {
              "gather": "gather", "index": "x[arange(N), targets]"})),
    Field("dropout", "implementation", "probability", "Dropout", "dropout probability (default: the preset's)",
          "shape"),
    Field("sliding_window", "implementation", "whole_or_none", "Sliding window", "attend to the last this many "
          "tokens, or none (default: the preset's)", "shape", limit=MAX_SIZE),
    *(Field(name, "implementation", "flag", *_FLAG_LABELS[name], "shape", _NO_YES) for name in SHAPE_FLAGS
      if _FLAG_GROUP[name] == "implementation"),
    *_step_fields("", "step", "setup"),
    *_step_fields("b_", "compare", "compare"),
    Field("claim", "claim", "size", "Claimed figure (e.g. 2.265 GB)", "a figure to explain, such as '2.265 GB'",
          "inputs"),
    Field("claim_scope", "claim", "choice", "The figure is", "per sequence, or for the whole batch", "inputs",
          (("sequence", "per sequence"), ("batch", "for the batch"))),
    Field("dp", "parallel", "whole", *_LAYOUT_LABELS["dp"], "setup", limit=MAX_PARALLEL),
    Field("zero", "parallel", "choice", "ZeRO stage", "what ZeRO shards over the replicas; in FSDP's "
          "names, NO_SHARD is 0, SHARD_GRAD_OP 2, FULL_SHARD 3",
          "setup", _labelled(tuple(map(str, ZERO_STAGES)), _ZERO_LABELS), cast=int),
    Field("framework", "parallel", "choice", "Framework", "what runs the layout, with its own buffers and "
          "precision: auto is DDP for stage 0 and DeepSpeed for ZeRO 1-3; fsdp2 is PyTorch's fully_shard (zero 3 "
          "reshards after forward, zero 2 does not)", "setup",
          tuple((key, name) for key, name in FRAMEWORKS.items())),
    Field("fsdp", "aliases", "choice", "FSDP sharding", "PyTorch FSDP's name for a ZeRO stage: full = 3, grad-op = 2, "
          "no-shard = 0 (sets zero)", "inputs", (("", "—"),) + tuple((name, name) for name in FSDP_STAGES),
          in_link=False),
    Field("tp", "parallel", "whole", *_LAYOUT_LABELS["tp"], "setup", limit=MAX_PARALLEL),
    Field("sp", "parallel", "flag", "Sequence parallelism", "split norms and dropout by sequence (with tp)", "setup",
          _NO_YES),
    Field("pp", "parallel", "whole", *_LAYOUT_LABELS["pp"], "setup", limit=MAX_PARALLEL),
    Field("virtual_stages", "parallel", "whole", *_LAYOUT_LABELS["virtual_stages"], "setup", limit=MAX_PARALLEL),
    Field("schedule", "parallel", "choice", "Pipeline schedule", "the order each stage runs its micro-batches in: "
          "1F1B, or GPipe (every forward, then every backward: PyTorch's pipelining, framework ddp)", "setup",
          tuple(SCHEDULES.items())),
    Field("cp", "parallel", "whole", *_LAYOUT_LABELS["cp"], "setup", limit=MAX_PARALLEL),
    Field("microbatches", "parallel", "whole", *_LAYOUT_LABELS["microbatches"], "setup", limit=MAX_PARALLEL),
    Field("finetune", "finetune", "choice", "What trains", "full: every parameter (pretraining, full fine-tuning); "
          "lora: peft's LoRA adapters, the rest frozen; qlora: LoRA over a base quantized by bitsandbytes (4-bit NF4, "
          "or as the quantized base field says)", "setup",
          (("full", "full: every parameter"), ("lora", "lora: LoRA adapters"),
           ("qlora", "qlora: LoRA over a quantized base"))),
    Field("lora_rank", "finetune", "whole", "LoRA rank r", "the adapters' rank (LoraConfig r)", "setup",
          limit=MAX_LORA_RANK),
    Field("lora_alpha", "finetune", "whole", "LoRA alpha", "scales the adapters' output by alpha / r: no memory",
          "setup", limit=MAX_LORA_RANK),
    Field("lora_dropout", "finetune", "probability", "LoRA dropout", "dropout on each adapter's input "
          "(LoraConfig lora_dropout)", "setup"),
    Field("lora_targets", "finetune", "modules", "LoRA target modules", "all-linear, or some of "
          f"{', '.join(LLAMA_MODULES)} (Llama-style code), of {', '.join(GPT2_MODULES)} (GPT-2) or of "
          f"{', '.join(REFERENCE_MODULES)} (the reference implementation) separated by commas "
          "(LoraConfig target_modules)", "setup"),
    Field("quant_type", "finetune", "choice", "QLoRA quantized base", "bnb_4bit_quant_type: NormalFloat4 or a 4-bit "
          "float, the same bytes; or int8: load_in_8bit (LLM.int8()), a byte a weight", "setup",
          (("nf4", "nf4: 4-bit NormalFloat4"), ("fp4", "fp4: 4-bit float"), ("int8", "int8: 8-bit LLM.int8()"))),
    Field("double_quant", "finetune", "flag", "QLoRA double quantisation", "bnb_4bit_use_double_quant: each "
          "64-value block's scale in 8 bits (else in fp32); no effect on an int8 base", "setup", _NO_YES),
    Field("freeze_embeddings", "finetune", "flag", "Token embedding frozen", "full fine-tuning with the token "
          "embedding's requires_grad off: no gradient, no optimizer state, and autograd keeps no token ids",
          "setup", _NO_YES),
    Field("frozen_blocks", "finetune", "whole", "Frozen first blocks", "full fine-tuning with the first k decoder "
          "layers' requires_grad off (below a frozen embedding): they keep no gradient, no state and no "
          "activations", "setup", limit=MAX_FROZEN_BLOCKS, minimum=0),
    Field("prepare_kbit", "finetune", "flag", "prepare_model_for_kbit_training", "peft's preparation of a QLoRA "
          "base: the embeddings, norms and head cast to fp32, so the model computes in fp32 around its 4-bit "
          "matmuls (its checkpointing is the Checkpointing field)", "setup", _NO_YES),
    Field("reduce_bucket", "buffers", "whole", "Reduce bucket (values)", "DeepSpeed's reduce_bucket_size: gradients "
          "reduced at once under ZeRO", "setup", limit=10**12),
    Field("prefetch_bucket", "buffers", "whole", "ZeRO-3 prefetch (values)", "DeepSpeed's stage3_prefetch_bucket_size: "
          "parameters gathered ahead of the layer that needs them", "setup", limit=10**12),
    Field("nccl", "buffers", "size", "NCCL per communicator", "memory NCCL takes on each GPU for each process group "
          "the layout communicates in (data, tensor, pipeline, context parallel), outside PyTorch's allocator: an "
          f"assumption ({size_text(DEFAULT_NCCL)}); set yours, or 0", "setup", minimum=0),
    Field("ddp_bucket_view", "buffers", "flag", "DDP gradient_as_bucket_view", "DDP's gradients are views of its "
          "buckets (else the buckets are a second copy of the gradients)", "setup", _NO_YES),
    Field("solve_sequences", "solver", "whole_or_none", "Sequences per step", "sequences one optimizer step trains "
          "on, or none: replicas × micro-batches × batch above", "question", limit=MAX_BATCH * MAX_PARALLEL),
    Field("solve_zero", "solver", "choice", "ZeRO stage to use", "a stage the answer must use, or any", "question",
          (("any", "any"),) + tuple((k, v) for k, v in _ZERO_LABELS.items())),
    Field("max_microbatches", "solver", "whole_or_none", "Most micro-batches", "the most micro-batches (gradient "
          "accumulation steps) a step may take, or none for no limit", "question", limit=MAX_PARALLEL),
    Field("allow_tp", "solver", "flag", "Tensor parallelism allowed", "may the answer split layers over GPUs",
          "question", _NO_YES),
    Field("allow_pp", "solver", "flag", "Pipeline parallelism allowed", "may the answer split the layers into stages",
          "question", _NO_YES),
    Field("allow_cp", "solver", "flag", "Context parallelism allowed", "may the answer split each sequence's tokens "
          "(with flash attention)", "question", _NO_YES),
    Field("gpu", "gpu", "choice", "GPU", "the card: its memory as the driver reports it, less the reserve", "inputs",
          tuple((key, f"{g.name} ({g.mib:,} MiB)") for key, g in GPUS.items()) + (("custom", "another: type its memory"),)),
    Field("arch", "gpu", "choice", "GPU architecture", "the card's compute capability, which decides the attention "
          "kernel CUDA runs (default: the card's; sm90 for another card)", "setup",
          tuple((arch, f"{arch} ({cards})") for arch, cards in ARCHES.items())),
    Field("reserve", "gpu", "size", "Reserve (CUDA context)", "memory a step cannot use, taken off the card's total: "
          "the CUDA context, kernels and libraries outside PyTorch's allocator (an assumption: set yours)", "inputs",
          minimum=0),
    Field("fragmentation", "gpu", "percent", "Allocator's cache (fragmentation)", "a share of the card kept free for "
          "what PyTorch's caching allocator reserves beyond the blocks it hands out (an assumption: see On your GPU; "
          "expandable_segments narrows it)", "inputs"),
    Field("budget", "gpu", "size", "GPU memory for tensors", "with GPU \"another\": memory for tensors, such as "
          "'80 GB' or '80 GiB'; a link that gives it picks \"another\"", "inputs"),
    Field("unit", "gpu", "choice", "Show sizes in", "unit of the rounded figures", "inputs",
          (("GB", "GB (10⁹ bytes)"), ("GiB", "GiB (2³⁰ bytes)"))),
)
BY_NAME: dict[str, Field] = {fld.name: fld for fld in FIELDS}
NAMES = tuple(BY_NAME)

assert {f.attribute for f in FIELDS if f.target == "setup"} == set(TrainingSetup.__dataclass_fields__), \
    "every TrainingSetup attribute has one field"
assert len(NAMES) == len(FIELDS), "field names are unique"

DEFAULT_TEXT = {"preset": DEFAULT_PRESET, "budget": "80 GB", "unit": "GB", "claim": "2.265 GB",
                "claim_scope": "sequence", "hf_config": "", "gpu": DEFAULT_GPU, "reserve": DEFAULT_RESERVE,
                "fragmentation": DEFAULT_FRAGMENTATION, "fsdp": "",
                "solve_zero": "any", "solve_sequences": "none", "max_microbatches": "none", "allow_tp": "true", "allow_pp": "true",
                "allow_cp": "true"}
"""The defaults of the fields that set neither the shape (the preset's) nor a setup."""
COMPARE_DEFAULTS = {"dtype": "bf16", "attention": "flash", "checkpoint": "block"}
"""Setup B starts as setup A with bf16, flash attention and per-block checkpointing."""
PRESET_FIELDS = tuple(f.name for f in FIELDS if f.target == "shape")
KEPT_ACROSS_PRESETS = ("context",)
CLEARED_BY = {"gpu": ("budget",)}
"""What choosing another value of a field drops from the reader's inputs: a named card's
memory is its own, so a budget typed for another card goes."""
"""What a reader set that choosing another preset keeps: the context is the run's choice
more than the model's (a model with learned positions says so if it cannot take it)."""
KEY_FIELDS = ("preset", "context", "batch", "dtype", "attention", "checkpoint", "gpu")
"""The inputs most readers change, which every panel shows first; the rest fold by group."""
"""The fields a preset sets: choosing another preset replaces them."""


def in_group(group: str) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.group == group)

