import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "calc", *args], capture_output=True, text=True)


def test_json_has_the_promised_fields_for_the_seed_model():
    out = run("--preset", "cs336-gpt2-xl", "--batch", "2", "--accounting", "seed", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["parameters"] == 2_127_057_600
    assert result["bytes"]["activations"] == 2 * 16_262_172_672
    assert result["bytes"]["parameters"] == 4 * 2_127_057_600
    assert set(result["bytes"]) >= {"parameters", "gradients", "optimizer", "activations", "peak"}
    assert result["tables"]["seed"][0]["formula"] == "s·d"


def test_shape_flags_override_the_preset():
    result = json.loads(run("--preset", "gpt2-small", "--layers", "1", "--d-model", "64", "--heads", "2",
                            "--kv-heads", "1", "--d-ff", "256", "--vocab", "10", "--context", "8",
                            "--implementation", "reference", "--json").stdout)  # GPT-2 as HF writes it has no GQA
    expected = {"vocab": 10, "context": 8, "layers": 1, "d_model": 64, "heads": 2, "kv_heads": 1, "d_ff": 256,
                "ffn": "gelu", "norm": "layernorm", "bias": True, "positions": "learned", "tied": True,
                "max_positions": 1024}  # GPT-2 keeps its 1,024 learned positions
    assert {k: result["shape"][k] for k in expected} == expected


def test_list_presets_prints_one_name_a_line():
    names = run("--list-presets").stdout.split()
    assert "gpt2-xl" in names and "cs336-gpt2-xl" in names and "llama-2-7b" in names


@pytest.mark.parametrize("args, flag", [
    (("--batch", "0"), "--batch"),
    (("--batch", "two"), "--batch"),
    (("--heads", "7"), "--heads"),
    (("--d-model", "-5"), "--d-model"),
    (("--accounting", "vibes"), "--accounting"),
    (("--dtype", "fp8"), "--dtype"),
    (("--budget", "lots"), "--budget"),
    (("--preset", "gpt-9"), "--preset"),
    (("--no-such-flag",), "--no-such-flag"),
])
def test_bad_input_is_one_line_naming_the_flag_with_exit_code_2(args, flag):
    out = run(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in out.stderr


def test_text_tables_label_units():
    out = run("--accounting", "seed", "--unit", "GiB").stdout
    assert "15.145 GiB" in out  # 16,262,172,672 / 2^30


def test_architecture_flags_turn_the_seed_model_into_gpt2_xl():
    # GPT-2 XL: LayerNorm, GELU MLP, learned positions, biases, tied head: 1,557,611,200
    # parameters, its published count (tests/engine/test_parameters.py derives it too)
    out = run("--ffn", "gelu", "--norm", "layernorm", "--positions", "learned", "--bias", "--tied", "true", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["parameters"] == 1_557_611_200


@pytest.mark.parametrize("params", [{"batch": "4,5"}, {"heads": "7"}, {"d_model": "1625", "heads": "25"},
                                    {"budget": "1e999999"}, {"claim": "0.1 B"}, {"tp": "3", "dp": "2"},
                                    {"sp": "maybe"}, {"ffn": "relu"}])
def test_the_cli_says_what_the_site_says(params):
    from calc.errors import InputError
    from calc.fields import BY_NAME
    from calc.inputs import parse_inputs

    with pytest.raises(InputError) as site:
        parse_inputs(params)
    args = [a for name, value in params.items() for a in (BY_NAME[name].flag, value)]
    cli = run(*args)
    assert cli.returncode == 2
    expected = "".join(f"calc: error: {BY_NAME[field].flag}: {message}\n" for field, message in site.value.errors.items())
    assert cli.stderr == expected


def test_every_view_prints_in_the_terminal():
    from calc.catalog import VIEWS

    out = run(*[a for name in VIEWS for a in ("--view", name)])
    assert out.returncode == 0, out.stderr
    assert "Bytes per parameter by regime" in out.stdout and "The numbers in this picture" in out.stdout
    assert "Nearest to 2.265 GB per sequence" in out.stdout and "a step fit on" in out.stdout
    assert "16,262,172,672" in out.stdout  # the seed checks: the seed's total bytes


def test_views_as_json():
    out = run("--view", "regimes", "--json")
    regimes = json.loads(out.stdout)["regimes"][0]
    fp32_adamw = next(r for r in regimes["rows"] if r["key"] == "fp32-adamw")
    cells = dict(zip(regimes["headers"], fp32_adamw["cells"]))
    assert [cells[h] for h in ("Parameters", "Gradients", "Optimizer state", "Total per parameter")] == ["4", "4", "8", "16"]
    assert cells["bf16 copies (per parameter, averaged)"] == "0"  # 4 + 4 + 8 bytes a parameter, no copies


def cli(argv):
    """calc's CLI in this process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from calc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from calc.fields import FIELDS  # noqa: E402

FLAGS = [f.flag for f in FIELDS] + ["--view", "--bars", "--vary", "--unit", "--json", "--markdown", "--nope"]
VALUES = ["0", "1", "2", "-1", "4,5", "1e999999", "9" * 5000, "<script>", "fp8", "bf16", "true", "80 GB", "0.5 B",
          "selective", "llama-3-8b", "summary", "solver", "chart-context", "65536", ""]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.text(max_size=12)), max_size=8))
def test_random_argument_lists_give_output_or_one_line_per_error(argv):
    code, out, err = cli(argv)
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        assert out == "" and err and all(line.startswith("calc: error: ") for line in err.splitlines())


@pytest.mark.parametrize("config, published", [("meta-llama-3-8b", 8_030_261_248), ("qwen2-7b", 7_615_616_512)])
def test_hf_config_reads_a_config_file(config, published):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "validation" / "hf_configs" / f"{config}.json"
    out = run("--hf-config", str(path), "--context", "4096", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["parameters"] == published and result["shape"]["implementation"] == "hf"


def test_hf_config_names_a_file_it_cannot_read():
    out = run("--hf-config", "/no/such/config.json")
    assert out.returncode == 2 and out.stderr.startswith("calc: error: --hf-config: cannot read")


def test_hf_config_names_a_path_no_file_can_have(capsys):
    # a NUL byte cannot be in a path (a shell cannot pass one either; Python callers can)
    from calc.cli import main
    try:
        main(["--hf-config", "\x00"])
    except SystemExit as stop:
        assert stop.code == 2
    assert capsys.readouterr().err.startswith("calc: error: --hf-config: cannot read")


def test_cuda_is_the_default_and_device_cpu_gives_the_measured_figures():
    results = json.loads((__import__("pathlib").Path(__file__).resolve().parents[2] / "validation" / "results.json").read_text())
    measured = next(c for c in results["cases"] if c["name"] == "cs336-gpt2-xl" and c["batch"] == 1
                    and (c["attention"], c["checkpoint"], c["dtype"]) == ("explicit", "none", "bf16"))
    cpu = json.loads(run("--dtype", "bf16", "--device", "cpu", "--json").stdout)
    cuda = json.loads(run("--dtype", "bf16", "--json").stdout)
    assert cuda["setup"]["device"] == "cuda" and cpu["setup"]["device"] == "cpu"
    assert cpu["bytes"]["activations"] == measured["activations"] == 7_930_732_548
    # CUDA autocast keeps the softmax output in fp32 and again in bf16 (4·L·h·s² bytes
    # more) and the log-probabilities in bf16 beside their fp32 copy (2·s·V more)
    assert cuda["bytes"]["activations"] - cpu["bytes"]["activations"] == 4 * 48 * 25 * 1024 * 1024 + 2 * 1024 * 50257


def test_the_optimizer_step_is_a_moment_the_cli_prints():
    out = run("--view", "moments", "--optimizer-impl", "foreach")
    assert out.returncode == 0, out.stderr
    assert "The optimizer step" in out.stdout and "The peak of the tensors is the optimizer step" in out.stdout
    assert "As PyTorch's caching allocator counts it" in out.stdout  # one CUDA GPU: its blocks too


def test_solve_takes_its_stage_from_zero_or_fsdp_and_a_bad_one_is_named_by_its_own_flag():
    common = ("--preset", "llama-3-8b", "--context", "4096", "--dtype", "bf16", "--attention", "flash",
              "--checkpoint", "block", "--solve-sequences", "8", "--allow-cp", "false", "--solve")
    for stage in (("--zero", "3"), ("--fsdp", "full")):
        out = run(*common, *stage)
        assert out.returncode == 0, out.stderr
        assert "with ZeRO-3" in out.stdout.splitlines()[0]
    for flag, value in (("--fsdp", "bogus"), ("--zero", "9")):
        out = run("--solve", flag, value)
        assert out.returncode == 2 and out.stderr.startswith(f"calc: error: {flag}:") and "solve" not in out.stderr


# What a careful user met (issue: every answer right), each now a test.

@pytest.mark.parametrize("args", [
    ("--preset", "llama-3-8b", "--attention", "flash", "--dropout", "0.1"),  # PyTorch's math composite on CUDA
    ("--norm", "layernorm", "--dtype", "bf16-master"),  # LayerNorm's fp32 statistics, measured on an H200
    ("--preset", "llama-2-7b", "--d-model", "128", "--view", "compare"),  # setup B falls back to explicit attention
    ("--solve", "--solve-sequences", "1000003"),  # prime, past calc's largest batch: no layout, and why
    ("--solve", "--accounting", "seed", "--attention", "flash"),  # no context parallelism for the seed's list
])
def test_what_crashed_the_cli_is_an_answer(args):
    out = run(*args)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.strip()


def test_a_prime_number_of_sequences_past_the_largest_batch_says_why_nothing_fits():
    out = run("--solve", "--solve-sequences", "1000003")
    assert "No layout" in out.stdout and "over calc's largest batch (1,000,000)" in out.stdout


def test_a_view_that_cannot_show_these_inputs_says_so_in_one_line_and_the_others_print():
    out = run("--implementation", "scratch", "--accounting", "seed", "--positions", "learned", "--view", "chart-stack",
              "--view", "summary")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "chart-stack is not shown" in out.stderr
    assert "Memory of one training step" in out.stdout


@pytest.mark.parametrize("args, flag", [
    (("--gpu", "t4", "--budget", "80 GB"), "--budget"),  # a named card's memory is its own
    (("--gpu", "custom", "--reserve", "10 GB"), "--reserve"),  # a budget is already memory for blocks
    (("--gpu", "custom", "--fragmentation", "2"), "--fragmentation"),
    (("--preset", "llama-2-7b", "--d-model", "128", "--b-attention", "flash"), "--b-attention"),  # not derived
])
def test_a_combination_calc_refuses_is_one_line_naming_a_flag_that_exists(args, flag):
    out = run(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"calc: error: {flag}: ") and out.stderr.count("\n") == 1


def test_an_empty_config_file_is_refused_and_an_imported_model_is_named_by_its_config(tmp_path):
    empty = tmp_path / "config.json"
    empty.write_text("  \n")
    out = run("--hf-config", str(empty))
    assert out.returncode == 2 and "empty" in out.stderr
    llama = run("--hf-config", "validation/hf_configs/meta-llama-3-8b.json")
    said, summary = llama.stdout.split("\n")[0], llama.stdout.split("\n")[2]
    assert said.startswith("Read LlamaForCausalLM (llama): 8,030,261,248 parameters (8.03 billion), 32 layers")
    assert summary.startswith("LlamaForCausalLM, from a llama config.json: 8,030,261,248 parameters")
