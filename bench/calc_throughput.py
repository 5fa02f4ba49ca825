"""calc's throughput: one full accounting, and a sweep of 10,000 configurations.

    python bench/calc_throughput.py [--repeats 7]

Prints medians (and the spread) in milliseconds. A full accounting is what a page's
widget asks for on every edit: the summary (fixed memory, activations, peak, largest
batch) and the parameter, fixed and activation tables rendered to HTML.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calc import PRESETS, ModelShape, TrainingSetup, activation_table, fixed_table, parameter_table, summary  # noqa: E402
from calc.site.html import formula_table_html  # noqa: E402


def full_accounting(shape: ModelShape, setup: TrainingSetup) -> int:
    result = summary(shape, setup)
    html = "".join(formula_table_html(t) for t in (parameter_table(shape), fixed_table(shape, setup), activation_table(shape, setup)))
    return result["largest_batch"] + len(html)


def random_configs(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        heads = rng.choice([8, 12, 16, 25, 32])
        shape = ModelShape(vocab=rng.randint(1000, 200_000), context=rng.choice([512, 1024, 2048, 4096, 8192]),
                           layers=rng.randint(1, 96), d_model=heads * rng.choice([64, 128]), heads=heads,
                           kv_heads=rng.choice([k for k in (1, 2, 4, 8, heads) if heads % k == 0]),
                           d_ff=rng.randint(256, 32768), ffn=rng.choice(["swiglu", "gelu"]))
        setup = TrainingSetup(batch=rng.randint(1, 64), accounting=rng.choice(["seed", "cs336", "autograd"]),
                              attention=rng.choice(["explicit", "flash"]), checkpoint=rng.choice(["none", "block"]),
                              dtype=rng.choice(["fp32", "bf16"]))
        yield shape, setup


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    seed_shape = PRESETS["cs336-gpt2-xl"]
    # a new batch each time, as an edit brings: what calc caches per shape still helps, as in the browser
    one = timed(lambda: [full_accounting(seed_shape, TrainingSetup(batch=b)) for b in range(1, 101)], args.repeats)
    configs = list(random_configs(10_000))
    sweep = timed(lambda: [summary(shape, setup) for shape, setup in configs], args.repeats)
    from calc.inputs import parse_inputs
    from calc.reverse import search

    inputs = parse_inputs({})
    figures = [x * 10**6 for x in range(1000, 1100)]  # a new claim each time (1.000 … 1.099 GB): nothing cached
    reverse = timed(lambda: [search(inputs, nbytes, "GB", "sequence") for nbytes in figures], args.repeats)
    print(f"reverse search (every accounting, option, row subset and reading): median "
          f"{statistics.median(reverse) / len(figures):.2f} ms a claim")
    print(f"one full accounting (seed model, rendered): median {statistics.median(one) / 100:.3f} ms "
          f"(min {min(one) / 100:.3f}, max {max(one) / 100:.3f}) over {args.repeats} runs of 100")
    print(f"sweep of 10,000 configurations (summary each): median {statistics.median(sweep):.0f} ms "
          f"= {10_000 / statistics.median(sweep) * 1000:,.0f} configurations/s (min {min(sweep):.0f}, max {max(sweep):.0f} ms)")


if __name__ == "__main__":
    main()
