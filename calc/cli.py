"""The command line: every field of the registry as a flag, read by the same parser as
the site's inputs (so the messages are the same), and every view the site shows.

    python -m calc --preset llama-3-8b --context 4096 --dtype bf16 --attention flash
    python -m calc --ffn gelu --norm layernorm --view options --view chart-stack
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from calc.activations import activation_table
from calc.catalog import OPTIONS, RESULTS_FILES, VIEWS, answer, view_options
from calc.errors import FieldError, InputError
from calc.fields import FIELDS, BY_NAME
from calc.fixed import fixed_table
from calc.gpus import GPUS
from calc.hf_config import config_summary
from calc.inputs import Inputs, parse_inputs
from calc.layout.per_gpu import per_gpu_table
from calc.layout.solver import FSDP_STAGES
from calc.parameters import parameter_table
from calc.presets import PRESETS
from calc.render import part_text
from calc.report import summary
from calc.table import Formula, Grid, Sentence, Table
from calc.units import in_unit

VALIDATION = Path(__file__).resolve().parent.parent / "validation"
"""The committed measurements, for `--view validation` in a checkout."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line naming the flag, exit code 2, no usage dump and no traceback; characters
        that are not printable (a typed newline, say) are shown escaped."""
        printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.exit(2, f"calc: error: {printable}\n")


def _metavar(field) -> str:
    if field.kind in ("choice", "flag"):
        return "{" + ",".join(field.values) + "}"
    return {"whole": "N", "whole_or_none": "N|none", "probability": "P", "percent": "PERCENT", "size": "SIZE",
            "json": "PATH", "modules": "NAMES"}[field.kind]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m calc", description="Exact memory of training a transformer. Every input of the site "
                "is a flag here; a value not given takes the preset's or the default.")
    groups = {}
    for field in FIELDS:
        group = groups.get(field.group) or groups.setdefault(field.group, p.add_argument_group(field.group))
        extra = dict(nargs="?", const="true") if field.kind == "flag" else {}
        group.add_argument(field.flag, dest=field.name, metavar=_metavar(field), help=field.help, **extra)
    out = p.add_argument_group("output")
    out.add_argument("--view", action="append", default=[], metavar="NAME",
                     help="print one of the site's views instead of the summary (repeatable; see --list-views)")
    for option, allowed in {o: a for options in OPTIONS.values() for o, a in options.items()}.items():
        out.add_argument("--" + option, dest="option_" + option, metavar="{" + ",".join(allowed) + "}",
                         help=f"the {option} option of the views that have one")
    out.add_argument("--solve", action="store_true",
                     help="answer: the fewest GPUs for this step (the solver view); --zero or --fsdp fixes the stage, "
                          "--gpu or --budget the memory, --max-microbatches and --allow-tp/--allow-pp the rest")
    out.add_argument("--list-presets", action="store_true", help="print the preset names, one a line, and exit")
    out.add_argument("--list-views", action="store_true", help="print the view names, one a line, and exit")
    out.add_argument("--list-gpus", action="store_true", help="print the GPUs, their reported memory and its source")
    out.add_argument("--markdown", action="store_true", help="Markdown tables instead of plain text")
    out.add_argument("--json", action="store_true", help="one JSON object with every number and row")
    return p


def _table_json(table: Table) -> list[dict]:
    return [{"key": r.key, "name": r.name, "formula": r.formula.text(), "latex": r.formula.latex(), "count": r.count,
             "bytes_per_value": r.bytes_per_value, "bytes": r.bytes, "per_step": r.per_step, "category": r.category}
            for r in table.rows]


def _part_json(part, unit: str):
    if isinstance(part, Table):
        return {"table": part.key, "rows": _table_json(part)}
    if isinstance(part, Sentence):
        return {"sentence": part.key, "text": part.text}
    if isinstance(part, Formula):
        return {"formula": part.text(), "latex": part.latex()}
    g = part if isinstance(part, Grid) else part.numbers()
    return {"grid": g.key, "caption": g.caption, "headers": list(g.headers),
            "rows": [{"key": r.key, "cells": list(r.cells)} for r in g.rows]}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_presets:
        print("\n".join(PRESETS))
        return 0
    if args.list_views:
        print("\n".join(VIEWS))
        return 0
    if args.list_gpus:
        print("\n".join(f"{key:10} {g.name:17} {g.mib:>7,} MiB = {g.nbytes:>14,} bytes  ({g.source})"
                        for key, g in GPUS.items()))
        return 0
    params = {f.name: getattr(args, f.name) for f in FIELDS if getattr(args, f.name) is not None}
    for field in FIELDS:
        if field.kind == "json" and field.name in params:  # --hf-config PATH: the file's text
            try:
                params[field.name] = Path(params[field.name]).read_text()
            except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: a NUL in the path
                parser.exit(2, f"calc: error: {field.flag}: cannot read {params[field.name]!r} ({e.__class__.__name__})\n")
            if not params[field.name].strip():
                parser.exit(2, f"calc: error: {field.flag}: {getattr(args, field.name)!r} is empty, not a config.json\n")
    if args.solve:
        args.view = [*args.view, "solver"]
        # on the command line, a stage given with --solve is the one the answer must use; a
        # value that is not a stage stays with its own flag, whose parser names it
        stage = str(FSDP_STAGES[params["fsdp"]]) if params.get("fsdp") in FSDP_STAGES else params.get("zero")
        if stage in BY_NAME["zero"].values:
            params.setdefault("solve_zero", stage)
    options = {o: getattr(args, "option_" + o) for opts in OPTIONS.values() for o in opts
               if getattr(args, "option_" + o) is not None}
    try:
        inputs = parse_inputs(params)
        for name in args.view:
            if name not in VIEWS:
                raise InputError({"view": f"unknown view {name!r}; known: {', '.join(VIEWS)}"})
            view_options(name, options)
    except InputError as e:
        parser.exit(2, "".join(f"calc: error: {_flag(field)}: {message}\n" for field, message in e.errors.items()))
    if args.view:
        return _print_views(inputs, args.view, options, args)
    return _print_summary(inputs, params, args)


def _flag(field: str) -> str:
    return BY_NAME[field].flag if field in BY_NAME else "--" + field.replace("_", "-")


def _print_views(inputs: Inputs, names: list[str], options: dict, args) -> int:
    def options_for(name: str) -> dict:
        path = VALIDATION / RESULTS_FILES.get(name, "-")
        return {**options, "results": json.loads(path.read_text())} if path.is_file() else options

    answers = {}
    for name in names:
        try:
            answers[name] = answer(name, inputs, options_for(name))
        except (FieldError, InputError) as e:  # the inputs are fine; this view cannot show them
            messages = e.errors.values() if isinstance(e, InputError) else [e.message]
            print(f"calc: the view {name} is not shown for these inputs: {'; '.join(messages)}", file=sys.stderr)
    if args.json:
        print(json.dumps({name: [_part_json(p, inputs.unit) for p in parts] for name, parts in answers.items()}, indent=1))
        return 0
    for parts in answers.values():
        for part in parts:
            print(part_text(part, inputs.unit, args.markdown))
    return 0


def _print_summary(inputs: Inputs, params: dict, args) -> int:
    shape, setup, unit = inputs.shape, inputs.setup, inputs.unit
    result = summary(shape, setup, inputs.budget)
    tables = [parameter_table(shape), fixed_table(shape, setup), activation_table(shape, setup)]
    if setup.parallel:
        per_gpu = per_gpu_table(shape, setup)
        tables.append(per_gpu)
        result["per_gpu"] = {r.key: r.bytes for r in per_gpu.rows} | {"gpus": setup.gpus}
    if args.json:
        result["tables"] = {t.key: _table_json(t) for t in tables}
        print(json.dumps(result, indent=1))
        return 0
    b = result["bytes"]
    if inputs.hf_config:
        print(config_summary(inputs.hf_config, shape, result["parameters"]) + "\n")
    modified = any(BY_NAME[name].target == "shape" for name in params)
    print(f"{inputs.model_name}{' (modified)' if modified else ''}: {result['parameters']:,} parameters; "
          f"accounting {setup.accounting}, attention {setup.attention}, checkpoint {setup.checkpoint}, "
          f"{setup.dtype}, {setup.optimizer}{'' if 'bit' in setup.optimizer else f' ({setup.step_impl})'}, batch {setup.batch:,}, on {setup.device_name}\n")
    for t in tables:
        print(part_text(t, unit, args.markdown))
    print(f"Activations for the batch: {b['activations']:,} bytes = {in_unit(b['activations'], unit)}")
    where = f"on the fullest of {setup.gpus:,} GPUs" if setup.gpus > 1 else "on one GPU"
    if b["peak"] != b["peak_tensors"]:
        print(f"Peak of the training step {where}, the tensors: {b['peak_tensors']:,} bytes = "
              f"{in_unit(b['peak_tensors'], unit)}")
        print(f"The same peak as PyTorch's caching allocator counts it (max_memory_allocated): {b['peak']:,} bytes = "
              f"{in_unit(b['peak'], unit)}")
    else:
        print(f"Peak of the training step {where}: {b['peak']:,} bytes = {in_unit(b['peak'], unit)}")
    print(f"Largest batch in {inputs.budget_label}: {result['largest_batch']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
