"""What a layout costs to run beyond its GPUs: the pipeline's idle time and the bytes each
GPU sends a step. The solver ranks the layouts that fit on the fewest GPUs by these.

Textbook estimates of volume, not of time (no bandwidths, no overlap):

- **the pipeline's bubble**: under 1F1B each stage idles (p − 1)/m of a step's compute
  time, under the interleaved schedule (p − 1)/(m·v) (Narayanan et al. 2021, "Efficient
  Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", section 2.2);
- **data parallelism**, once a step over the N = dp·cp ranks sharing the model states: a
  ring all-reduce of the gradients sends 2(N − 1)/N of them (DDP); ZeRO-1 and 2 and
  Megatron-LM's distributed optimizer reduce-scatter the gradients and all-gather the
  updated parameters, (N − 1)/N of each; ZeRO-3 gathers the parameters again in
  backward, 1.5 times ZeRO-2's volume in equal precision (Rajbhandari et al. 2020,
  "ZeRO", section 7);
- **tensor parallelism**, per layer and micro-batch: two all-reduces of the layer's
  b·s·d activations in forward and two in backward (Shoeybi et al. 2019, "Megatron-LM",
  section 3), two more where a checkpointed layer's forward runs again; sequence
  parallelism turns each into a reduce-scatter and an all-gather of the same volume
  (Korthikanti et al. 2022, section 4.2.2);
- **pipelines**, per micro-batch and stage boundary: the activations forward and their
  gradients back, b·s·d each, v times over v chunks;
- **context parallelism** (ring attention), per layer and micro-batch: K and V passed
  round the ring in forward (cp − 1 steps), K and V and their gradients in backward.
"""

from __future__ import annotations

from fractions import Fraction

from calc.fixed import state_bytes
from calc.layout.frameworks import framework_of
from calc.layout.split import ceil_div, stages
from calc.setup import TrainingSetup
from calc.shape import ModelShape


def bubble(setup: TrainingSetup) -> Fraction:
    """The share of a step a pipeline stage idles: (p − 1)/(m·v)."""
    return Fraction(setup.pp - 1, setup.microbatches * setup.virtual_stages)


def sent_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes the fullest stage's GPUs each send in one step (see the module's sources)."""
    here = max(stages(shape, setup), key=lambda stage: stage.parameters)
    weight, gradient, _ = state_bytes(setup)
    ranks, t, p, cp = setup.dp * setup.cp, setup.tp, setup.pp, setup.cp
    sent = Fraction(0)
    if ranks > 1:
        share = Fraction(ranks - 1, ranks) * here.parameters
        if setup.zero == 0 and framework_of(setup) == "ddp":
            sent += 2 * share * gradient
        else:
            sent += share * (gradient + weight * (2 if setup.zero == 3 else 1))
    tokens = setup.microbatches * setup.batch * ceil_div(shape.context, cp)  # each GPU's tokens a step
    activation = tokens * shape.d_model * setup.bytes_per_value
    if t > 1:
        collectives = 4 + (2 if setup.checkpoint == "block" else 0)
        sent += here.layers * collectives * Fraction(2 * (t - 1), t) * activation
    if p > 1:
        sent += 2 * setup.virtual_stages * activation
    if cp > 1:
        kv = tokens * 2 * shape.kv_heads * shape.d_head * setup.bytes_per_value // t
        sent += here.layers * (cp - 1) * 3 * kv
    return int(sent)
