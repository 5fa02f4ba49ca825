"""`python -m calc`: the tables for a preset or a custom shape, as text or JSON."""

from __future__ import annotations

import argparse
import json
import re
import sys

from calc.activations import activation_table
from calc.fixed import fixed_table
from calc.parallel import check_layout, per_gpu_table
from calc.parameters import parameter_table
from calc.presets import DEFAULT_PRESET, PRESETS, preset
from calc.render import to_markdown, to_text
from calc.report import summary
from calc.setup import ACCOUNTINGS, ATTENTION_KINDS, CHECKPOINT_KINDS, DTYPES, OPTIMIZERS, TrainingSetup
from calc.units import in_unit, parse_size

SHAPE_FLAGS = ("vocab", "context", "layers", "d_model", "heads", "kv_heads", "d_ff")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line naming the flag, exit code 2, no usage dump and no traceback."""
        self.exit(2, f"calc: error: {message}\n")


def _whole(text: str) -> int:
    if not re.fullmatch(r"\s*[0-9][0-9_,]*\s*", text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text.replace(",", "").replace("_", ""))


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m calc", description="Exact memory of training a transformer.")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), metavar="NAME",
                   help=f"published shape to start from (default {DEFAULT_PRESET}; see --list-presets)")
    p.add_argument("--list-presets", action="store_true", help="print the preset names, one a line, and exit")
    for name in SHAPE_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=_whole, metavar="N", help=f"override the preset's {name}")
    p.add_argument("--batch", type=_whole, default=1, metavar="B", help="sequences per step (default 1)")
    p.add_argument("--accounting", choices=ACCOUNTINGS, default="autograd")
    p.add_argument("--attention", choices=ATTENTION_KINDS, default="explicit")
    p.add_argument("--checkpoint", choices=CHECKPOINT_KINDS, default="none")
    p.add_argument("--dtype", choices=DTYPES, default="fp32")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--dp", type=_whole, default=1, metavar="N", help="data-parallel replicas")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=0, help="ZeRO stage (with --dp)")
    p.add_argument("--tp", type=_whole, default=1, metavar="T", help="tensor-parallel size")
    p.add_argument("--sp", action="store_true", help="sequence parallelism (with --tp)")
    p.add_argument("--pp", type=_whole, default=1, metavar="P", help="pipeline stages")
    p.add_argument("--microbatch", type=_whole, metavar="M", help="sequences per micro-batch (the same as --batch)")
    p.add_argument("--microbatches", type=_whole, default=1, metavar="K", help="micro-batches per step and replica")
    p.add_argument("--budget", type=_size, default="80 GB", metavar="SIZE", help="GPU memory, e.g. '80 GB' or '80 GiB'")
    p.add_argument("--unit", choices=("GB", "GiB"), default="GB", help="unit of the rounded columns")
    p.add_argument("--markdown", action="store_true", help="Markdown tables instead of plain text")
    p.add_argument("--json", action="store_true", help="one JSON object with every number and row")
    return p


def _flag_for(message: str) -> str:
    """The flag a validation message is about: 'd_model must …' -> '--d-model'."""
    field = message.split(" ", 1)[0]
    known = SHAPE_FLAGS + ("batch", "dp", "zero", "tp", "sp", "pp", "microbatches")
    return "--" + field.replace("_", "-") if field in known else ""


def _rows_json(table) -> list[dict]:
    return [{"key": r.key, "name": r.name, "formula": r.formula.text(), "latex": r.formula.latex(), "count": r.count,
             "bytes_per_value": r.bytes_per_value, "bytes": r.bytes, "per_step": r.per_step} for r in table.rows]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_presets:
        print("\n".join(PRESETS))
        return 0
    overrides = {k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None}
    try:
        shape = preset(args.preset).replace(**overrides)
        if args.microbatch is not None and args.batch not in (1, args.microbatch):
            parser.error("--microbatch: give --batch or --microbatch, not both")
        setup = TrainingSetup(batch=args.microbatch or args.batch, accounting=args.accounting, attention=args.attention,
                              checkpoint=args.checkpoint, dtype=args.dtype, optimizer=args.optimizer, dp=args.dp,
                              zero=args.zero, tp=args.tp, sp=args.sp, pp=args.pp, microbatches=args.microbatches)
        if setup.parallel:
            check_layout(shape, setup)
    except ValueError as e:
        flag = _flag_for(str(e))
        parser.error(f"{flag}: {e}" if flag else str(e))
    result = summary(shape, setup, args.budget)
    tables = [parameter_table(shape), fixed_table(shape, setup), activation_table(shape, setup)]
    if setup.parallel:
        per_gpu = per_gpu_table(shape, setup)
        tables.append(per_gpu)
        result["per_gpu"] = {r.key: r.bytes for r in per_gpu.rows} | {"total": per_gpu.total_bytes,
                                                                    "gpus": setup.dp * setup.tp * setup.pp}
    if args.json:
        result["tables"] = {t.key: _rows_json(t) for t in tables}
        print(json.dumps(result, indent=1))
        return 0
    render = to_markdown if args.markdown else to_text
    b = result["bytes"]
    print(f"{args.preset}{' (modified)' if overrides else ''}: {result['parameters']:,} parameters; "
          f"accounting {setup.accounting}, attention {setup.attention}, checkpoint {setup.checkpoint}, "
          f"{setup.dtype}, {setup.optimizer}, batch {setup.batch:,}\n")
    for t in tables:
        print(render(t, args.unit))
    print(f"Activations for the batch: {b['activations']:,} bytes = {in_unit(b['activations'], args.unit)}")
    print(f"Peak of the training step on one GPU: {b['peak']:,} bytes = {in_unit(b['peak'], args.unit)}")
    print(f"Largest batch on one GPU of {in_unit(args.budget, args.unit, trim=True)}: {result['largest_batch']:,}")
    if setup.parallel:
        g = result["per_gpu"]
        print(f"On the fullest of {g['gpus']:,} GPUs: {g['total']:,} bytes = {in_unit(g['total'], args.unit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
