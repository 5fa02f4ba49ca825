"""The one entry point the browser calls: page state and view requests in, HTML out.

The JavaScript sends strings and receives strings; every number is made here. `handle`
takes and returns JSON so that nothing but text crosses the Pyodide boundary.
"""

from __future__ import annotations

import json

from calc.extras import CLAIM_FIELDS, COMPARE_FIELDS, extra_params, extra_values, validate_extras
from calc.inputs import FIELDS, InputError, field_values, inputs_to_params, parse_inputs
from calc.presets import PRESETS
from calc.inputs import forget_parsed
from calc.views import STATIC_VIEWS, VIEWS, forget_rendered, render_value, render_view


def handle(request_json: str) -> str:
    """Render a page's views for its state.

    Request: {"state": {field: string}, "views": [{"kind": "view"|"value", "name": …,
    "key": …, "params": {pinned field: string}}]}. Reply: {"ok": bool, "errors": {field:
    message}, "resolved": {field: string}, "canonical": {field: string} (the short form for
    the URL), "html": [string per request, or null where a request was not rendered]}.
    """
    request = json.loads(request_json)
    known = (*FIELDS, *COMPARE_FIELDS, *CLAIM_FIELDS)
    state = {k: str(v) for k, v in request.get("state", {}).items() if k in known}
    inputs, errors = None, {}
    try:
        inputs = parse_inputs(state)
    except InputError as e:
        errors.update(e.errors)
    errors.update(validate_extras(state, inputs))
    if errors:
        return json.dumps({"ok": False, "errors": errors, "html": []})
    html = []
    for item in request.get("views", []):
        params = {**state, **{k: str(v) for k, v in item.get("params", {}).items()}}
        name = item.get("name", "")
        if item.get("kind") == "value":
            html.append(render_value(name, params))
        elif name in VIEWS and name not in STATIC_VIEWS:
            html.append(render_view(name, params, item.get("key") or name))
        else:
            html.append(None)
    return json.dumps({"ok": True, "errors": {}, "resolved": {**field_values(inputs), **extra_values(inputs, state)},
                       "canonical": {**inputs_to_params(inputs), **extra_params(inputs, state)}, "html": html})


def presets() -> str:
    """The preset names, as JSON, for the select."""
    return json.dumps(list(PRESETS))


WARM_UP_VIEWS = ("summary", "parameters", "fixed", "regimes", "activations", "moments", "accountings", "seed-checks",
                 "formulas", "block-formula", "chart-block", "chart-context", "compare")
WARM_UP = [(name, str(batch)) for batch in (2, 3, 5) for name in WARM_UP_VIEWS]
"""What warm_up renders: the quick views (a few ms each), at three batch sizes."""


def warm_up(step: int) -> bool:
    """Render WARM_UP[step]; False once every step is done.

    The browser compiles WebAssembly first in a quick baseline tier and recompiles what runs
    often, so a reader's first dozen edits would take several times longer than the rest.
    The worker runs these steps, one per task, while the reader is still reading. At the
    last step calc's memory of renders is emptied, so that none of this answers an edit.
    """
    if step < len(WARM_UP):
        name, batch = WARM_UP[step]
        render_view(name, {"batch": batch})
    if step + 1 >= len(WARM_UP):
        forget_rendered()
        forget_parsed()
        return False
    return True
