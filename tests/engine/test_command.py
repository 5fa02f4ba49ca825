"""The terminal command a page shows for the reader's inputs (calc.command): typed, it gives
back those inputs and prints the page's answer."""

import shlex

from calc.catalog import VIEWS
from calc.cli import build_parser, main
from calc.command import WIDTH, command_line
from calc.fields import FIELDS
from calc.inputs import parse_inputs

ZERO_PAGE = {"preset": "llama-3-8b", "context": "4096", "batch": "8", "dtype": "bf16", "attention": "flash",
             "checkpoint": "block", "gpu": "h100-80gb", "zero": "3", "solve_sequences": "8"}
"""The ZeRO page's own start (docs/zero.md), whose solver the command repeats."""


def _argv(command: str) -> list[str]:
    """The arguments a shell passes to `python -m calc` for the command as shown."""
    words = shlex.split(command.replace(" \\\n", " "))
    assert words[:3] == ["python", "-m", "calc"]
    return words[3:]


def _params(argv: list[str]) -> dict:
    """The field values the CLI reads from the arguments."""
    args = build_parser().parse_args(argv)
    return {f.name: getattr(args, f.name) for f in FIELDS if getattr(args, f.name) is not None}


def test_the_command_gives_back_the_reader_s_inputs_quotes_and_all():
    inputs = parse_inputs({**ZERO_PAGE, "preset": "mistral-7b", "batch": "3", "claim": "41.5 GiB", "nccl": "1 GiB",
                           "lora_targets": "q_proj, v_proj", "finetune": "lora", "zero": "0"})
    command = command_line(inputs)
    assert "--claim '41.5 GiB'" in command and "--nccl '1 GiB'" in command  # a value with a space, quoted
    assert parse_inputs(_params(_argv(command))) == inputs
    assert all(len(line) <= WIDTH for line in command.splitlines())


def test_the_solver_s_command_prints_the_solver_s_answer(capsys):
    inputs = parse_inputs(ZERO_PAGE)
    command = command_line(inputs, "solve")
    # --zero with --solve alone would be the stage the answer must use; the page's solver may
    # use any, and the command says so
    assert command.endswith("--solve-zero any --solve")
    assert main(_argv(command)) == 0
    answer = VIEWS["solver"](inputs, {})[0].text
    assert answer.startswith("8 sequences of 4,096 tokens a step fit on ")
    assert answer in capsys.readouterr().out


def test_a_page_s_command_follows_the_reader(capsys):
    # the same page, once the reader picks another model and batch: the command is theirs
    assert main(["--preset", "mistral-7b", "--batch", "2", "--view", "command"]) == 0
    printed = capsys.readouterr().out
    assert "--preset mistral-7b" in printed and "--batch 2" in printed and "llama" not in printed
