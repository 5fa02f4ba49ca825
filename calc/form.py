"""The inputs panel a page shows above its live tables, as HTML.

Field names are calc's vocabulary (the URL's query keys too). The panel is rendered at
build time with the defaults and starts disabled; the widget script enables it once calc
is running in the browser.
"""

from __future__ import annotations

import json
from calc.escape import escape

from calc.extras import CLAIM_SCOPES, extra_values
from calc.inputs import field_values, parse_inputs
from calc.presets import PRESETS
from calc.setup import ACCOUNTINGS, ATTENTION_KINDS, CHECKPOINT_KINDS, DTYPES, OPTIMIZERS

# (name, label, kind, options or None)
MODEL_FIELDS = (
    ("preset", "Model preset", "select", tuple(PRESETS)),
    ("vocab", "Vocabulary V", "number", None),
    ("context", "Context s (tokens)", "number", None),
    ("layers", "Layers L", "number", None),
    ("d_model", "d_model", "number", None),
    ("heads", "Heads h", "number", None),
    ("kv_heads", "KV heads h_kv", "number", None),
    ("d_ff", "d_ff", "number", None),
)
ARCHITECTURE_FIELDS = (
    ("ffn", "Feed-forward", "select", ("swiglu", "gelu")),
    ("norm", "Norm", "select", ("rmsnorm", "layernorm")),
    ("positions", "Positions", "select", ("rope", "learned")),
    ("bias", "Biases", "select", ("false", "true")),
    ("tied", "Tied embeddings", "select", ("false", "true")),
)
STEP_FIELDS = (
    ("batch", "Batch B (sequences)", "number", None),
    ("accounting", "Accounting", "select", ACCOUNTINGS),
    ("attention", "Attention", "select", ATTENTION_KINDS),
    ("checkpoint", "Checkpointing", "select", CHECKPOINT_KINDS),
    ("dtype", "Precision", "select", DTYPES),
    ("optimizer", "Optimizer", "select", OPTIMIZERS),
)
COMPARE_FIELDS = tuple((f"b_{name}", label, kind, options) for name, label, kind, options in STEP_FIELDS)
"""Setup B's fields: the training step's, each name prefixed with b_ (calc.extras reads them)."""
CLAIM_FIELDS = (
    ("claim", "Claimed figure (e.g. 2.265 GB)", "text", None),
    ("claim_scope", "The figure is", "select", CLAIM_SCOPES),
)
PARALLEL_FIELDS = (
    ("dp", "Data-parallel replicas dp", "number", None),
    ("zero", "ZeRO stage", "select", ("0", "1", "2", "3")),
    ("tp", "Tensor-parallel size tp", "number", None),
    ("sp", "Sequence parallelism", "select", ("false", "true")),
    ("pp", "Pipeline stages pp", "number", None),
    ("microbatches", "Micro-batches per step", "number", None),
)
GPU_FIELDS = (
    ("budget", "GPU memory", "text", None),
    ("unit", "Show sizes in", "select", ("GB", "GiB")),
)
OPTION_LABELS = {
    "swiglu": "SwiGLU", "gelu": "GELU MLP", "rmsnorm": "RMSNorm", "layernorm": "LayerNorm", "rope": "RoPE",
    "learned": "learned", "false": "no", "true": "yes", "explicit": "explicit (softmax kept)",
    "flash": "flash (fused)", "none": "none", "block": "every block", "fp32": "fp32", "bf16": "bf16 autocast",
    "adamw": "AdamW", "sgd": "SGD with momentum", "seed": "the seed's list", "cs336": "CS336 list",
    "autograd": "what autograd keeps", "GB": "GB (10⁹ bytes)", "GiB": "GiB (2³⁰ bytes)",
    "sequence": "per sequence", "batch": "for the batch", "selective": "selective (attention core)",
    "megatron": "Korthikanti et al. (Megatron)", "0": "0 (none)", "1": "1: optimizer state", "2": "2: + gradients",
    "3": "3: + parameters",
}


def _field(name: str, label: str, kind: str, options, value: str) -> str:
    fid = f"calc-in-{name}"
    described = f'aria-describedby="{fid}-error"'
    if kind == "select":
        opts = "".join(f'<option value="{escape(o)}"{" selected" if o == value else ""}>{escape(OPTION_LABELS.get(o, o))}</option>'
                       for o in options)
        control = f'<select id="{fid}" name="{name}" {described}>{opts}</select>'
    elif kind == "number":
        control = (f'<input id="{fid}" name="{name}" type="number" inputmode="numeric" min="1" step="1" '
                   f'value="{escape(value)}" {described}>')
    else:
        control = f'<input id="{fid}" name="{name}" type="text" value="{escape(value)}" {described} spellcheck="false">'
    return (f'<div class="calc-field" data-field="{name}"><label for="{fid}">{escape(label)}</label>{control}'
            f'<span class="calc-error" id="{fid}-error"></span></div>')


def inputs_panel(params: dict | None = None, compare: bool = False, claim: bool = False, parallel: bool = False) -> str:
    """The page's inputs panel, filled with `params` (defaults when empty), disabled. With
    `compare`, a second setup's fields (b_*); with `claim`, the claimed figure's."""
    inputs = parse_inputs(params or {})
    values = {**field_values(inputs), **extra_values(inputs, params or {})}

    def group(legend: str, fields) -> str:
        inner = "".join(_field(n, label, kind, opts, values[n]) for n, label, kind, opts in fields)
        return f'<fieldset><legend>{escape(legend)}</legend><div class="calc-fields">{inner}</div></fieldset>'

    return (
        f'<form class="calc-inputs" id="inputs" aria-label="Inputs for the tables on this page" autocomplete="off" '
        f'data-defaults="{escape(json.dumps(params or {}, sort_keys=True))}">'
        '<fieldset class="calc-all" disabled>'
        + group("Model", MODEL_FIELDS)
        + '<details class="calc-architecture"><summary>Architecture: feed-forward, norm, positions, biases, tying</summary>'
        + group("Architecture", ARCHITECTURE_FIELDS) + "</details>"
        + group("Training step" + (" (setup A)" if compare else ""), STEP_FIELDS)
        + (group("Setup B, to compare", COMPARE_FIELDS) if compare else "")
        + (group("The claim to explain", CLAIM_FIELDS) if claim else "")
        + (group("Across GPUs (batch above is the micro-batch per GPU)", PARALLEL_FIELDS) if parallel else "")
        + group("GPU", GPU_FIELDS)
        + '<div class="calc-actions"><button type="button" class="md-button" data-action="reset">Reset to defaults</button>'
        '<button type="button" class="md-button" data-action="copy">Copy link</button></div>'
        '</fieldset><p class="calc-status" role="status" aria-live="polite">'
        "Tables below are computed for these inputs. Live editing starts once calc has loaded in your browser"
        " (it needs JavaScript and WebAssembly).</p></form>"
    )
