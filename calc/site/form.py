"""The inputs panel a page shows above its live tables, as HTML, from the field registry.

Field names are calc's vocabulary (the URL's query keys too). The panel is rendered at
build time with the page's values and starts disabled; the widget script enables it once
calc is running in the browser. The panel carries the field list the browser needs
(`data-fields`), so no field name is written in JavaScript.
"""

from __future__ import annotations

import json

from calc.fields import GROUPS, PRESET_FIELDS, Field, in_group
from calc.inputs import field_values, parse_inputs
from calc.site.escape import escape

ALWAYS = ("model", "config", "architecture", "implementation", "step")
"""The groups every panel shows (the GPU's comes last); the others only where a view reads them."""
FOLDED = {"config", "architecture", "implementation", "buffers"}
"""Groups folded away under their legend."""


def _control(field: Field, value: str) -> str:
    fid = f"calc-in-{field.name}"
    common = f'id="{fid}" name="{field.name}" aria-describedby="{fid}-error"'
    if field.kind in ("choice", "flag"):
        options = "".join(f'<option value="{escape(v)}"{" selected" if v == value else ""}>{escape(label)}</option>'
                          for v, label in field.choices)
        extra = f' data-clears="{" ".join(PRESET_FIELDS)}"' if field.name == "preset" else ""
        return f"<select {common}{extra}>{options}</select>"
    if field.kind == "whole":
        return f'<input {common} type="text" inputmode="numeric" value="{escape(value)}" spellcheck="false">'
    if field.kind == "json":
        return f'<textarea {common} rows="3" spellcheck="false" placeholder="{{&quot;model_type&quot;: …}}">{escape(value)}</textarea>'
    return f'<input {common} type="text" value="{escape(value)}" spellcheck="false">'


def _field(field: Field, value: str) -> str:
    fid = f"calc-in-{field.name}"
    return (f'<div class="calc-field" data-field="{field.name}"><label for="{fid}" title="{escape(field.help)}">'
            f'{escape(field.label)}</label>{_control(field, value)}<span class="calc-error" id="{fid}-error"></span></div>')


def _group(group: str, values: dict, legend: str | None = None) -> str:
    inner = "".join(_field(f, values[f.name]) for f in in_group(group))
    fieldset = (f'<fieldset><legend>{escape(legend or GROUPS[group].split(":")[0])}</legend>'
                f'<div class="calc-fields">{inner}</div></fieldset>')
    if group in FOLDED:
        return f'<details class="calc-{group}"><summary>{escape(GROUPS[group])}</summary>{fieldset}</details>'
    return fieldset


def inputs_panel(params: dict | None = None, groups: tuple = ()) -> str:
    """The page's inputs panel, filled with `params` (defaults when empty), disabled. It
    shows the groups every page has, then `groups` (compare, claim, parallel), then the GPU."""
    values = field_values(parse_inputs(params or {}))
    shown = [g for g in GROUPS if g in ALWAYS or g in groups or g == "gpu"]
    names = [f.name for g in shown for f in in_group(g)]
    body = "".join(_group(g, values, "Training step (setup A)" if g == "step" and "compare" in groups else None)
                   for g in shown)
    return (
        f'<form class="calc-inputs" id="inputs" aria-label="Inputs for the tables on this page" autocomplete="off" '
        f'data-defaults="{escape(json.dumps(params or {}, sort_keys=True))}" data-fields="{escape(" ".join(names))}">'
        '<fieldset class="calc-all" disabled>' + body
        + '<div class="calc-actions"><button type="button" class="md-button" data-action="reset">Reset to defaults</button>'
        '<button type="button" class="md-button" data-action="copy">Copy link</button></div>'
        '</fieldset><p class="calc-status" role="status" aria-live="polite">'
        "Tables below are computed for these inputs. Live editing starts once calc has loaded in your browser"
        " (it needs JavaScript and WebAssembly).</p>"
        '<noscript><p class="calc-noscript">JavaScript is off: the tables show this page\'s defaults, and inputs in a '
        "link cannot be applied.</p></noscript></form>"
    )
