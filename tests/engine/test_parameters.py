"""Parameter counts against published figures, each derived by hand beside it."""

import pytest

from calc import PRESETS, parameter_count, parameter_table
from calc.errors import FieldError


def test_gpt2_xl_has_its_published_1_557_611_200_parameters():
    V, s, L, d, d_ff = 50257, 1024, 48, 1600, 6400
    embeddings = V * d + s * d  # wte, wpe
    block = (
        2 * d  # ln_1 weight and bias
        + d * 3 * d + 3 * d  # c_attn
        + d * d + d  # attn c_proj
        + 2 * d  # ln_2
        + d * d_ff + d_ff  # mlp c_fc
        + d_ff * d + d  # mlp c_proj
    )
    expected = embeddings + L * block + 2 * d  # + ln_f
    assert expected == 1_557_611_200  # the released checkpoint's count
    assert parameter_count(PRESETS["gpt2-xl"]) == expected


@pytest.mark.parametrize(
    "name, published",
    [
        # Hugging Face model cards / num_parameters() of the released GPT-2 checkpoints
        ("gpt2-small", 124_439_808),
        ("gpt2-medium", 354_823_168),
        ("gpt2-large", 774_030_080),
        ("gpt2-xl", 1_557_611_200),
        # Touvron et al. 2023; Meta's Llama 3 release; Mistral AI's 7B v0.1 release
        ("llama-2-7b", 6_738_415_616),
        ("llama-3-8b", 8_030_261_248),
        ("mistral-7b", 7_241_732_096),
    ],
)
def test_presets_match_published_counts(name, published):
    assert parameter_count(PRESETS[name]) == published


def test_seed_model_has_2_127_057_600_parameters():
    V, L, d, d_ff = 50257, 48, 1600, 6400
    block = 2 * d + 4 * d * d + 3 * d * d_ff  # two RMSNorm gains, Q K V O, W1 W2 W3
    expected = 2 * V * d + L * block + d  # embedding, untied head, final norm
    assert expected == 2_127_057_600
    assert parameter_count(PRESETS["cs336-gpt2-xl"]) == expected


def test_grouped_query_attention_shrinks_only_k_and_v():
    llama3 = PRESETS["llama-3-8b"]
    rows = {r.key: r.count for r in parameter_table(llama3).rows}
    assert rows["w-q"] == 32 * 4096 * 4096
    assert rows["w-k"] == rows["w-v"] == 32 * 4096 * (8 * 128)


def test_tied_embeddings_add_no_head():
    keys = {r.key for r in parameter_table(PRESETS["gpt2-small"]).rows}
    assert "lm-head" not in keys and "position-embedding" in keys


def test_a_shorter_context_keeps_gpt2s_1024_learned_positions():
    # GPT-2 small has 124,439,808 parameters whatever the context a run uses: its position
    # table has n_positions = 1,024 rows (1,024 · 768 = 786,432 parameters of them)
    assert parameter_count(PRESETS["gpt2-small"].replace(context=512)) == 124_439_808


def test_a_context_past_the_learned_positions_is_refused_until_they_grow():
    with pytest.raises(FieldError) as error:
        PRESETS["gpt2-small"].replace(context=2048)
    assert error.value.field == "context"
    # 1,024 more rows of 768: 786,432 more parameters
    grown = PRESETS["gpt2-small"].replace(context=2048, max_positions=2048)
    assert parameter_count(grown) == 124_439_808 + 1024 * 768
