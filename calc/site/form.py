"""The inputs panel a page shows above its live tables, as HTML, from the field registry.

Field names are calc's vocabulary (the URL's query keys too). The panel is rendered at
build time with the page's values and starts disabled; the widget script enables it once
calc is running in the browser. The panel carries the field lists (its own,
`data-fields`, for tests and readers of the HTML; every one a link may set,
`data-link-fields`, which the browser keeps and carries), so no field name is written in
JavaScript; the browser reads its own fields from the form's controls.
"""

from __future__ import annotations

import json

from calc.fields import BY_NAME, CLEARED_BY, FIELDS, GROUPS, KEPT_ACROSS_PRESETS, KEY_FIELDS, PRESET_FIELDS, Field, in_group
from calc.inputs import field_values, parse_inputs
from calc.site.escape import escape

ALWAYS = ("model", "config", "architecture", "implementation", "step")
"""The groups every panel shows (the GPU's comes last); the others only where a view reads them."""
OPEN = {"compare", "claim", "parallel", "finetune"}
"""Groups shown open on the pages whose views read them; every other group, the key inputs
apart (calc.fields.KEY_FIELDS, shown first), is folded away under its legend. The solver's
question is folded too: it starts from the reader's own step, and on a phone its fields
would push the panel past two screens."""
FOLDED_LEGENDS = {"model": "Model shape: vocabulary, layers, widths, heads", "step": "More of the step: accounting, "
                  "optimizer, device, logits", "gpu": "GPU: reserve, budget, unit",
                  "solver": "The question: sequences per step, and the sizes and stages the solver may try"}
"""What a folded group's summary says where its legend alone would not."""
LINK_FIELDS = tuple(f.name for f in FIELDS if f.in_link)
"""Every field a link may set: the browser keeps and carries those a page's panel does not show."""


def _control(field: Field, value: str) -> str:
    fid = f"calc-in-{field.name}"
    common = f'id="{fid}" name="{field.name}" aria-describedby="{fid}-error"'
    if field.kind in ("choice", "flag"):
        options = "".join(f'<option value="{escape(v)}"{" selected" if v == value else ""}>{escape(label)}</option>'
                          for v, label in field.choices)
        return f"<select {common}{_clears(field)}>{options}</select>"
    if field.kind == "whole":
        return f'<input {common} type="text" inputmode="numeric" value="{escape(value)}" spellcheck="false">'
    if field.kind == "json":
        return (f'<textarea {common}{_clears(field)} rows="3" spellcheck="false" '
                f'placeholder="{{&quot;model_type&quot;: …}}">{escape(value)}</textarea>'
                f'<span class="calc-field-note" id="{fid}-note" data-note="{field.name}" aria-live="polite"></span>')
    return f'<input {common} type="text" value="{escape(value)}" spellcheck="false">'


def _clears(field: Field) -> str:
    """The data-clears attribute: what choosing another value of the field drops from the
    reader's inputs. A preset, or a pasted config, sets the model's shape afresh (the fields
    a reader keeps across presets apart); a card drops a budget typed for another."""
    replaces_shape = field.name == "preset" or field.kind == "json"
    clears = ([name for name in PRESET_FIELDS if name not in KEPT_ACROSS_PRESETS] if replaces_shape
              else list(CLEARED_BY.get(field.name, ())))
    return f' data-clears="{" ".join(clears)}"' if clears else ""


def _field(field: Field, value: str) -> str:
    fid = f"calc-in-{field.name}"
    return (f'<div class="calc-field" data-field="{field.name}"><label for="{fid}" title="{escape(field.help)}">'
            f'{escape(field.label)}</label>{_control(field, value)}<span class="calc-error" id="{fid}-error"></span></div>')


def _group(group: str, values: dict) -> str:
    inner = "".join(_field(f, values[f.name]) for f in in_group(group) if f.name not in KEY_FIELDS)
    fieldset = (f'<fieldset><legend>{escape(GROUPS[group].split(":")[0])}</legend>'
                f'<div class="calc-fields">{inner}</div></fieldset>')
    if group not in OPEN:
        summary = FOLDED_LEGENDS.get(group, GROUPS[group])
        return f'<details class="calc-{group}"><summary>{escape(summary)}</summary>{fieldset}</details>'
    return fieldset


def _key_group(values: dict, legend: str) -> str:
    inner = "".join(_field(BY_NAME[name], values[name]) for name in KEY_FIELDS)
    return (f'<fieldset class="calc-key"><legend>{escape(legend)}</legend>'
            f'<div class="calc-fields">{inner}</div></fieldset>')


def inputs_panel(params: dict | None = None, groups: tuple = ()) -> str:
    """The page's inputs panel, filled with `params` (defaults when empty), disabled. It
    shows the inputs most readers change first, then `groups` (compare, claim, parallel,
    fine-tuning) open, then every other group folded: the solver's question, the model's
    shape, config, architecture, implementation, the rest of the step, the GPU's details."""
    values = field_values(parse_inputs(params or {}))
    shown = [g for g in GROUPS if g in ALWAYS or g in groups or g == "gpu"]
    names = [f.name for g in shown for f in in_group(g)]
    opened = [g for g in shown if g in OPEN]
    body = (_key_group(values, "Model and step (setup A)" if "compare" in groups else "Model and step")
            + "".join(_group(g, values) for g in opened)
            + "".join(_group(g, values) for g in shown if g not in OPEN))
    return (
        f'<form class="calc-inputs" id="inputs" aria-label="Inputs for the tables on this page" autocomplete="off" '
        f'data-defaults="{escape(json.dumps(params or {}, sort_keys=True))}" data-fields="{escape(" ".join(names))}" '
        f'data-link-fields="{escape(" ".join(LINK_FIELDS))}">'
        '<fieldset class="calc-all" disabled>' + body
        + '<div class="calc-actions"><button type="button" class="md-button" data-action="reset">Reset to defaults</button>'
        '<button type="button" class="md-button" data-action="copy">Copy link</button></div>'
        '</fieldset><p class="calc-status" role="status" aria-live="polite">'
        "Tables below are computed for these inputs. Live editing starts once calc has loaded in your browser"
        " (it needs JavaScript and WebAssembly).</p>"
        '<noscript><style>.calc-status{display:none}</style><p class="calc-noscript">JavaScript is off: the tables '
        "show this page's defaults, and inputs in a link cannot be applied.</p></noscript></form>"
    )
