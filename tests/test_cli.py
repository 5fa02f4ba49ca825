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
                            "--kv-heads", "1", "--d-ff", "256", "--vocab", "10", "--context", "8", "--json").stdout)
    assert result["shape"] == {"vocab": 10, "context": 8, "layers": 1, "d_model": 64, "heads": 2, "kv_heads": 1,
                               "d_ff": 256, "ffn": "gelu", "norm": "layernorm", "bias": True, "positions": "learned",
                               "tied": True}


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
