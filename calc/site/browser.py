"""The one entry point the browser calls: page state and view requests in, HTML out.

The JavaScript sends strings and receives strings; every number is made here. `handle`
takes and returns JSON so that nothing but text crosses the Pyodide boundary. It never
raises: a bad input is a field error, anything else a plain internal error.
"""

from __future__ import annotations

import gc
import json
import sys

from calc import jsontext, peak
from calc.catalog import STATIC_VIEWS, VIEWS
from calc.errors import FieldError, InputError
from calc.fields import BY_NAME, NAMES
from calc.hf_config import config_summary
from calc.inputs import field_values, forget_parsed, inputs_to_params, parse_inputs
from calc.layout import split
from calc.parameters import parameter_count
from calc.site.html import unavailable_html
from calc.site.views import forget_rendered, render_value, render_view

MAX_REQUEST = 100_000
"""The longest request accepted, in characters (a page's request is about 2,000)."""
MAX_VIEWS = 64
"""The most views one request may ask for (the fullest page has a dozen)."""


def handle(request_json: str) -> str:
    """Render a page's views for its state.

    Request: {"state": {field: string}, "start": [field] (those of the state that are the
    page's own start, not the reader's), "views": [{"kind": "view"|"value", "name": …,
    "key": …, "params": {pinned field: string}}]}. Reply: {"ok": bool, "errors": {field:
    message}, "internal": message (only for a failure that is not the reader's),
    "resolved": {field: string}, "canonical": {field: string} (the short form for the
    URL), "fallback": {field: sentence} (start inputs the reader's refuse, left at calc's
    default, and why), "notes": {field: sentence} (said beside the field), "html": [string per request, or null where a request was not
    rendered]}.
    """
    try:
        return json.dumps(_handle(request_json))
    except InputError as e:
        return json.dumps({"ok": False, "errors": e.errors, "html": []})
    except FieldError as e:  # a view asked for a combination its inputs allow but it cannot show
        return json.dumps({"ok": False, "errors": {e.field: e.message}, "html": []})
    except Exception as e:  # noqa: BLE001 — the page shows a plain message, never a traceback
        return json.dumps({"ok": False, "errors": {}, "html": [],
                           "internal": f"calc could not compute this ({type(e).__name__}); the tables show the last "
                                       "good values."})


def _handle(request_json: str) -> dict:
    if not isinstance(request_json, str) or len(request_json) > MAX_REQUEST:
        raise InputError({"request": f"a request is a JSON text of at most {MAX_REQUEST:,} characters"})
    try:
        request = jsontext.loads(request_json)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        raise InputError({"request": "the request is not JSON, or nests too deep"}) from None
    if not isinstance(request, dict) or not isinstance(request.get("state", {}), dict) \
            or not isinstance(request.get("views", []), list) or len(request.get("views", [])) > MAX_VIEWS:
        raise InputError({"request": f"a request is {{state: {{field: text}}, views: [at most {MAX_VIEWS}]}}"})
    state = {k: _text(v) for k, v in request.get("state", {}).items() if k in NAMES}
    start = request.get("start", [])
    start = {name for name in start if isinstance(name, str)} if isinstance(start, list) else set()
    state, inputs, fallback = _falling_back(state, start)
    html = []
    for item in request.get("views", []):
        if not isinstance(item, dict) or not isinstance(item.get("params", {}), dict):
            html.append(None)
            continue
        params = {**state, **{str(k): _text(v) for k, v in item.get("params", {}).items()}}
        name, key = item.get("name"), item.get("key")
        key = key if isinstance(key, str) and key else None
        if not isinstance(name, str):
            html.append(None)
            continue
        try:
            if item.get("kind") == "value":
                html.append(render_value(name, params))
            elif name in VIEWS and name not in STATIC_VIEWS:
                html.append(render_view(name, params, key or name))
            else:
                html.append(None)
        except (InputError, FieldError) as e:  # the reader's inputs are fine; this view's pinned ones do not go with them
            messages = e.errors.values() if isinstance(e, InputError) else [e.message]
            html.append(unavailable_html(key or name, list(messages)))
        except KeyError:  # a value no summary has
            html.append(None)
    resolved = field_values(inputs)
    return {"ok": True, "errors": {}, "resolved": resolved, "canonical": inputs_to_params(inputs),
            "fallback": fallback, "notes": field_notes(inputs), "html": html}


def field_notes(inputs) -> dict[str, str]:
    """What the panel says beside a field: what calc read from a pasted config.json."""
    if not inputs.hf_config:
        return {}
    return {"hf_config": config_summary(inputs.hf_config, inputs.shape, parameter_count(inputs.shape))}


def _falling_back(state: dict, start: set) -> tuple[dict, object, dict]:
    """(the state, its inputs, {field: why}) where the page's own start inputs that the
    reader's inputs refuse (a page's bf16 master weights under a Hugging Face preset) are
    left at calc's defaults: a page's start never makes the reader's choice an error. An
    error in what the reader set stands."""
    try:
        return state, parse_inputs(state), {}
    except InputError as e:
        if not e.errors or not set(e.errors) <= start:
            raise
        kept = {name: value for name, value in state.items() if name not in e.errors}
        inputs = parse_inputs(kept)
        shown = field_values(inputs)
        fallback = {name: (f"This page starts from {BY_NAME[name].label.lower()} {state[name]}, which does not go "
                           f"with these inputs ({message}); shown with {shown[name]} instead.")
                    for name, message in e.errors.items()}
        return kept, inputs, fallback


def _text(value) -> str:
    """A request's value as the text a field holds (numbers and booleans as JSON writes them)."""
    return value if isinstance(value, str) else json.dumps(value)


WARM_UP_VIEWS = ("summary", "parameters", "fixed", "regimes", "activations", "moments", "seed-checks",
                 "formulas", "block-formula", "chart-block", "chart-context", "compare")
WARM_UP = [(name, str(batch)) for batch in (2, 3, 5) for name in WARM_UP_VIEWS]
"""What warm_up renders: the quick views (a few ms each in Pyodide; not the accountings side by
side, about 50 ms the first time), at three batch sizes."""


def forget_everything() -> None:
    """Empty every answer calc remembers: each lru_cache of its modules, the layouts' rows
    and the step's walks (calc.layout.split, calc.peak). The site's Pyodide snapshot is
    saved after this (hooks/make_snapshot.mjs): remembered answers would be downloaded with
    it, and a page's own inputs are not the ones they were made for."""
    for name, module in list(sys.modules.items()):
        if name == "calc" or name.startswith("calc."):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
    split._remembered.clear()
    peak._RISES.clear()


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
        gc.collect()
        gc.freeze()  # what exists now (calc's modules, the interpreter's) is never scanned again
        return False
    return True
