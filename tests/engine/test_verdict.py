"""The verdict card says what the page's tables and the solver say, in three sentences."""

from __future__ import annotations

from calc.catalog import answer
from calc.inputs import parse_inputs


def verdict(params: dict) -> list[str]:
    return [s.text for s in answer("verdict", parse_inputs(params))]


def test_the_lora_example_fits_an_rtx_4090_with_what_the_summary_and_the_solver_say():
    # #25's example: Llama-3-8B, LoRA r16 on every linear layer, 4,096 tokens, block
    # checkpointing, bf16 base: a peak of 21,907,497,486 bytes of the 23,395,617,997 an
    # RTX 4090 leaves after the reserve and the allocator's cache: 1,488,120,511 spare
    params = {"preset": "llama-3-8b", "finetune": "lora", "lora_rank": "16", "context": "4096",
              "checkpoint": "block", "attention": "flash", "dtype": "bf16-master", "gpu": "rtx-4090"}
    fit, batch, gpus = verdict(params)
    summary = " ".join(s.text for s in answer("summary", parse_inputs(params))[1:])
    assert 23_395_617_997 - 21_907_497_486 == 1_488_120_511
    assert fit == ("Fits: peak 21.907 GB (derived for CUDA from measurements on the CPU) of 23.396 GB usable on an "
                   "RTX 4090, 1.488 GB spare.")
    assert batch == "Largest batch: 1 sequence of 4,096 tokens." and ": 1 sequence." in summary
    assert gpus.startswith("Fewest GPUs for 1 sequence a step: 1 × RTX 4090")


def test_a_layout_that_does_not_fit_says_by_how_much_and_what_would():
    # The ZeRO page's start at 64 replicas, ZeRO-1, with Llama-3-8B in fp32 at its 8,192
    # tokens and explicit attention: the solver's answer is the verdict's third sentence
    params = {"preset": "llama-3-8b", "batch": "2", "dtype": "fp32", "dp": "64", "zero": "1"}
    fit, batch, gpus = verdict(params)
    assert fit.startswith("Does not fit: peak ") and " over 80.171 GB usable" in fit
    assert " a GPU (derived from DeepSpeed ZeRO's source, not measured), " in fit  # ZeRO-1 runs as DeepSpeed
    assert batch == "Largest batch: none of 8,192 tokens."
    solver = answer("solver", parse_inputs(params))[0].text
    assert solver.startswith("128 sequences of 8,192 tokens a step fit on 8 × H100 80GB")
    assert gpus.startswith("Fewest GPUs for 128 sequences a step: 8 × H100 80GB (dp 1 × tp 8")


def test_the_reader_s_framework_is_the_solver_s():
    params = {"preset": "llama-3-8b", "implementation": "reference", "context": "4096", "batch": "2",
              "dtype": "bf16-master", "checkpoint": "block", "attention": "flash", "gpu": "h100-80gb",
              "framework": "fsdp2", "dp": "4", "zero": "3"}
    gpus = verdict(params)[2]
    # FSDP2 runs inside PyTorch's pipelines too: two stages of one replica need 2 GPUs where sharding alone needs 4
    assert gpus.startswith("Fewest GPUs for 8 sequences a step with PyTorch FSDP2: 2 × H100 80GB (dp 1 × pp 2")


def test_the_verdict_says_where_its_peak_is_not_measured():
    # measured: the reference code's walk on an sm90 card (the H200's saved tensors); derived
    # on another card; a stated bound for Hugging Face code; DeepSpeed's rules from its source
    base = {"preset": "llama-3-8b", "implementation": "reference", "context": "4096", "attention": "flash",
            "checkpoint": "block", "dtype": "bf16"}
    labels = {
        "h100": verdict(base)[0],
        "a100": verdict({**base, "gpu": "a100-80gb"})[0],
        "hf": verdict({**base, "implementation": "hf"})[0],
        "deepspeed": verdict({**base, "dtype": "bf16-master", "dp": "8", "zero": "3"})[0],
        "textbook": verdict({**base, "accounting": "megatron", "attention": "explicit", "checkpoint": "none"})[0],
    }
    assert "(" not in labels["h100"]
    assert "(derived for this card, not measured on it)" in labels["a100"]
    assert "(an upper bound: its backward is stated, not walked)" in labels["hf"]
    assert "(derived from DeepSpeed ZeRO's source, not measured)" in labels["deepspeed"]
    assert "(counted by the textbook accounting, not measured)" in labels["textbook"]


def test_a_step_with_bitsandbytes_8_bit_adamw_on_an_h100_says_it_is_derived():
    # the H200 measured torch.optim's AdamW; bitsandbytes' 8-bit state is measured on CPU
    # tensors only: on the card the reference model's peak is measured for, the verdict and
    # the fixed table say so
    from calc.fixed import fixed_table
    for optimizer, label in (("adamw", ""), ("adamw-8bit", " (derived for CUDA from measurements on the CPU)")):
        params = {"gpu": "h200", "dtype": "bf16", "optimizer": optimizer, "batch": "1"}
        fit = verdict(params)[0]
        assert fit.startswith("Fits: peak ") and (label in fit if label else "(derived" not in fit), fit
        inputs = parse_inputs(params)
        notes = " ".join(fixed_table(inputs.shape, inputs.setup).notes)
        assert ("derived from its source, not measured on a GPU" in notes) == bool(label)
