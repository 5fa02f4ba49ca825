"""The peak of a training step: the tensors alive at each of its moments.

Under the `autograd` accounting the peak is found by walking the step's moments, in the
steady state (the optimizer's state exists; gradients were set to None after the last
step, PyTorch's default): forward through the last block, the end of the forward pass,
backward through the loss, LM head and final norm, through the last and the first block
(the blocks in between lie on a straight line between those two), through the
embeddings, and the optimizer step. At each moment we add up what is alive:

- always: the parameters and optimizer state, the buffers (RoPE tables) and the
  optimizer's step counts where they live on the device, the batch's token ids and
  targets, which the loop holds;
- the saved tensors not yet freed; autocast's bf16 weight (and bias) copies (until the
  autocast region exits its cache holds every copy, even under checkpointing; after it,
  only the copies the graph keeps);
- the loss (and the logits, where the loop keeps them), the last step's until the new
  one replaces it;
- the gradients made so far, or all of them from the second micro-batch on (gradient
  accumulation keeps them through every later micro-batch);
- what rises and falls inside the part the moment is in. For the reference implementation
  each part is walked op by op (calc.forward, calc.backward: a block's forward pass and,
  checkpointed, its recomputation; backward through the head, a block and the
  embeddings), and the moment holds the walk's highest op; the end of the forward pass
  holds the logits and their fp32 copy while log-softmax runs; the optimizer step its
  temporaries: foreach AdamW's sqrt of every second moment (4 bytes a parameter), the
  for-loop's sqrt and quotient of one parameter while the previous one's denominator is
  still referenced, nothing for fused AdamW or for SGD. Every moment equals, to the byte,
  the most bytes alive in its phase of real CPU steps (validation/timeline.py: five small
  shapes, every precision, attention, checkpointing and accumulation, each optimizer and
  loop). For Hugging Face and from-scratch code, and under selective recomputation, the
  head's and a block's backward are a stated upper bound instead: the larger of the
  log-probabilities' and logits' gradients and the head's new gradients with the ones it
  passes on; a block's saved tensors plus its largest gradients alive together
  (2·B·h·s² values in the compute dtype for explicit attention's softmax, 3·B·s·d_ff for
  SwiGLU, 2 for GELU), all its new weight gradients (accumulating, the largest one's
  before it is added in), and a recomputed block's saved tensors and weight copies.

Spread over GPUs (calc.layout.split), the same moments are walked on the fullest GPU: its
pipeline stage's layers (and, on a first stage, the other micro-batches in flight), its
tensor- and context-parallel share of the activations, its ZeRO shard of the states, and
the communication buffers its framework keeps (DDP's bucket copy of the gradients, ZeRO's
reduce and all-gather buckets, ZeRO-3's gathered layer).

The `seed`, `cs336` and `megatron` accountings have no moments: their peak is their own
sum, parameters + gradients + optimizer state + activations, as those derivations define it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from math import prod

from calc.activations.autograd import bf16_log_softmax
from calc.backward import LOSS_OPS, attention_rows, block_walk, embedding_walk, head_walk, walks_apply
from calc.fixed import buffer_bytes, state_bytes
from calc.forward import block_forward_walk
from calc.layout.frameworks import (buffers, gathers_and_reduces, gradients_into_held, keeps_gathered_inputs,
                             keeps_whole_embedding_gradient, megatron_sequence_parallel, nccl_bytes,
                             gradients_into_buckets, reduces_into_copies, runs_dtensor, runs_torch_pipeline,
                             step_temporaries)
from calc.layout.frameworks.fsdp2_buffers import (REDUCE_BYTES, buffers_by_moment, input_casts,
                                                  parameter_dtype_bytes, sharded_states)
from calc.layout.frameworks.fsdp2_pipeline import pass_buffers, root_values, sharded_stage_states
from calc.layout.schedule import Pass, every_pass, fullest, reduce_pass
from calc.layout.split import ROWS_DEPEND_ON, Stage, ceil_div, held_states, remember, split_rows, stages
from calc.frozen import trainable_tensors
from calc.lora import adapter_tensors, adapters_per_layer, layer_linears, trains_adapters
from calc.parameters import parameter_count, parameter_tensors
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import SYMBOLS, Table, f, row
from calc.walk import Line, highest_at, rises, rises_where, sizes

INDEX_BYTES, STEP_COUNT_BYTES = 8, 4

PART_SYMBOLS = {
    "W": "parameters and optimizer state (held all step)",
    "X": "buffers, and the optimizer's step counts where they are on the device",
    "B_n": "NCCL's memory for the GPU's communicators, outside PyTorch's allocator (assumed: the nccl field)",
    "B_g": "Megatron-LM's global buffer that sequence parallelism gathers each linear's input into, kept all run",
    "B_d": "DDP's gradient buckets, a second copy of the gradients (unless gradient_as_bucket_view)",
    "B_r": "ZeRO's reduce bucket, while backward reduces gradients",
    "B_p": "ZeRO-3's gathered parameters: the layer at work and the prefetch bucket",
    "I": "the batch's token ids and targets (int64), held by the loop",
    "A": "saved activations at the end of the forward pass (the inputs apart)",
    "A_m": "the other micro-batches in flight on the pipeline stage (1F1B): their saved activations (under "
           "PyTorch's schedules, and their outputs)",
    "A_p": "PyTorch's pipeline schedule: the micro-batch's output, kept through its backward, and the finished "
           "micro-batches' outputs and input gradients its send handles still reference",
    "A_o": "PyTorch's pipeline schedule: the last micro-batch's output, finished, until the new one replaces it",
    "B_q": "PyTorch's pipeline receive buffers: each micro-batch's input activations and output gradient, kept "
           "all run (those of micro-batches in flight counted as their saved inputs)",
    "L_s": "the blocks on this GPU's pipeline stage that keep tensors for backward (frozen ones, unless checkpointed, "
           "keep none)",
    "C": "bf16 weight (and bias) copies in autocast's cache (until the autocast region exits)",
    "C_g": "bf16 weight copies the graph keeps for backward",
    "C_a": "every bf16 weight copy of the stage, in autocast's cache from its first pass on, when autocast wraps a "
           "PyTorch pipeline's whole step",
    "K": "held by the loop's names after the forward pass: the loss, and the logits if it keeps them",
    "K_l": "the loss just made, and the last one, referenced until the new one replaces it",
    "A_e": "saved by the embedding, kept once a step (the causal mask, what the loss keeps once: its total-weight "
           "scalar) and by every block's random-number state",
    "A_z": "saved at the embedding's backward: its own, and what the loss keeps once a step, held until backward ends",
    "A_b": "saved by one block", "A_h": "saved by the final norm, head and loss",
    "A_hf": "saved before the loss, with the logits the head is making (FSDP2 in a pipeline)",
    "A_g": "saved before the first block's forward: the embedding's, what is kept once a step",
    "A_l": "saved by the blocks before the last one",
    "C_b": "one block's bf16 weight copies",
    "G": "all parameter gradients", "G_a": "gradients held from earlier micro-batches (accumulation)",
    "G_B": "the later blocks' new gradients, at the first block (ZeRO-2/3: none, each block's reduced)",
    "G_h": "final norm and LM head's new gradients, still held in the blocks (tied, the head's gradient of the "
           "shared matrix, also when accumulating: it waits for the embedding's)",
    "T_f": "logits while log-softmax runs",
    "T_l": "inside DTensor's vocabulary-parallel log-softmax, beyond the logits: the shifted logits (fp32) and "
           "three fp32 values a token, less the NLL weight, not yet made",
    "A_f": "saved before the last block's forward: the embedding's, the earlier blocks', what is kept once a step",
    "C_f": "the earlier blocks' bf16 weight (and bias) copies in autocast's cache",
    "E_f": "forward through a block at its fullest: its input, what it saves, its temporaries (walked op by op for "
           "the reference implementation; none counted for other code)",
    "E_h": "backward through the loss, LM head and final norm at its fullest, above what they saved: the "
           "gradients and temporaries alive at its highest op (walked op by op for the reference implementation; "
           "a stated upper bound for other code)",
    "E_hl": "E_h's part in the loss's backward, before the logits' gradient is whole",
    "E_hh": "E_h's part in the LM head's and final norm's backward",
    "E_b": "backward through a block at its fullest, above what the block saved: its gradients, its "
           "recomputed tensors under checkpointing, the temporaries of its highest op (walked op by op for the "
           "reference implementation; a stated upper bound for other code)",
    "T_e": "backward through the embeddings at its fullest, beyond the gradients G counts: the first block's input "
           "gradient, the new embedding gradients (accumulating) and, tied, the head's gradient of the shared matrix "
           "and their sum (walked op by op)",
    "T_o": "the optimizer step's temporaries",
    "T_c": "ring attention's K and V chunks in flight (context parallelism): the next one arriving, in backward with "
           "its gradients",
    "X_s": "one residual-stream tensor: the input of the block FSDP2 gathers, or the gradient flowing into a block",
    "X_g": "as FSDP2 casts a pipeline stage's first block's gradients: the gradient of its input and (but on the "
           "first stage) the micro-batch's receive buffer, which its saved activations no longer count",
    "X_r": "as FSDP2 casts a pipeline stage's root's gradients: on a stage but the first, the gradient of its input "
           "and the micro-batch's receive buffer",
    **{symbol: f"FSDP2 {what}" for symbol, what in (
        ("F_g0", "copying the first block's parameters out: the root's gathered parameters and all-gather buffer, "
                 "the block's"),
        ("F_gL", "copying the last block's parameters out: the root's, the last block's and its all-gather buffer, "
                 "the previous block's all-gather buffer (zero 2: the earlier blocks' parameters)"),
        ("F_f", "in a block's forward: the root's parameters, the block's and its all-gather buffer, kept until the "
                "next block gathers (zero 2: the earlier blocks' too)"),
        ("F_e", "at the end of the forward pass: the root's parameters, the last block's all-gather buffer (zero 2: "
                "every block's parameters)"),
        ("F_r", "gathering the root again for backward (zero 3): its parameters and all-gather buffer, with the "
                "loss's gradient"),
        ("F_h", "in the head's backward: the root's parameters, the last block's gathered ahead (zero 2: every "
                "block's)"),
        ("F_gb", "copying the last block's parameters out for backward, its all-gather buffer still alive"),
        ("F_l", "in the last block's backward: the root's parameters, the block's, the next block's gathered ahead"),
        ("F_rl", "reduce-scattering the last block's gradients: its unsharded gradients and the reduce-scatter input"),
        ("F_gn", "copying the next block's parameters out, the last block's reduce-scatter input and gradient shards "
                 "alive"),
        ("F_rs", "while the last block's gradients are reduce-scattered: the input, the shards, the block's last "
                 "unsharded gradient (on the CPU, gloo's copy of the input)"),
        ("F_1", "in the first block's backward: the root's and the block's parameters, the second block's "
                "reduce-scatter input, the later blocks' gradient shards"),
        ("F_rf", "reduce-scattering the first block's gradients: its unsharded gradients, a reduce-scatter input, the "
                 "later blocks' gradient shards"),
        ("F_rs1", "while the first block's gradients are reduce-scattered: the input, the shards, the block's last "
                  "unsharded gradient (on the CPU, gloo's copy of the input), the later blocks' shards"),
        ("F_rsr", "while the root's gradients are reduce-scattered: the input, the shards, its last unsharded "
                  "gradient (on the CPU, gloo's copy of the input), the blocks' shards"),
        ("F_z", "in the embedding's backward, beyond G: the root's parameters and unsharded gradients, the first "
                "block's reduce-scatter input, the blocks' gradient shards"),
        ("F_rr", "reduce-scattering the root's gradients: its unsharded gradients, its reduce-scatter input, the "
                 "blocks' gradient shards"),
        ("F_hf", "in a pipeline, in the head's forward: the root's parameters, the last block's all-gather buffer "
                 "(zero 2: every block's parameters), freed as the stage's forward ends, before the loss"),
        ("F_hb", "in a pipeline, in the head's backward once the logits' gradient is whole: the root's parameters, "
                 "the last block's gathered ahead (zero 2: every block's)"),
        ("F_cb", "in a pipeline under the bf16 policy, at the first block's post-backward: every parameter "
                 "gathered, the blocks' gradients cast to fp32 (the first micro-batch; later ones add theirs in)"),
        ("F_cr", "in a pipeline under the bf16 policy, at the root's post-backward: every parameter gathered, "
                 "the stage's gradients cast to fp32 (the first micro-batch; later ones add theirs in)"),
        ("F_Rr", "in a pipeline, once every micro-batch is done, reduce-scattering the stage root's gradients: the "
                 "blocks' gathered parameters and unsharded gradients, the root's input buffer (on the CPU, gloo's "
                 "copy), its shards and last unsharded gradient"),
        ("F_R1", "in a pipeline, reduce-scattering the first block's gradients: the later blocks' gathered parameters "
                 "and unsharded gradients, the block's input buffer (on the CPU, gloo's copy), its shards and last "
                 "unsharded gradient, the root's shards"),
    )},
}
FSDP2_PARTS = ("F_g0", "F_gL", "F_f", "F_e", "F_r", "F_h", "F_gb", "F_l", "F_rl", "F_rs", "F_gn", "F_1", "F_rf",
               "F_rs1", "F_z", "F_rr", "F_rsr", "F_hf", "F_hb", "F_cb", "F_cr", "F_Rr", "F_R1")

_INPUT_ROWS = {"reference": ("token-ids", "target-ids"), "scratch": ("token-ids", "target-ids"), "hf": ("token-ids",)}
"""Rows that are the loop's own input tensors (or views of them), counted in I instead."""


@dataclass(frozen=True)
class Moment:
    key: str
    name: str
    formula: tuple  # terms for calc.table.f


def optimizer_temporaries(shape: ModelShape, setup: TrainingSetup, parameters: int | None = None) -> int:
    """Bytes the optimizer step allocates beyond its state, at its fullest. AdamW foreach:
    _foreach_sqrt of every second moment at once; for-loop: one parameter's sqrt and the
    quotient made from it, while the previous parameter's denominator is still held by its
    Python name; fused (one kernel) and SGD (in place): none (torch/optim/adam.py, sgd.py)."""
    replicas = setup.dp * setup.cp
    sharded = replicas > 1 and setup.zero >= 1
    held = parameter_count(shape) if parameters is None else parameters  # on this GPU, before ZeRO
    if trains_adapters(setup):  # the optimizer steps the adapters alone
        return _step_over(adapter_tensors(shape, setup), setup)
    if setup.freezes:  # one GPU: the step skips the frozen parameters, which have no gradient
        return _step_over(trainable_tensors(shape, setup), setup)
    framework = step_temporaries(setup, ceil_div(held, replicas) if sharded else held, state_bytes(setup)[1])
    if framework is not None:  # DeepSpeed's or Megatron-LM's own step (calc.layout.frameworks)
        return framework
    if setup.optimizer != "adamw" or setup.step_impl == "fused":
        return 0
    if setup.dtype == "bf16-master" and not gathers_and_reduces(setup):
        return 0  # bf16-master: the frameworks' own fused steps over the fp32 master copy, taken as none
    if setup.step_impl == "foreach":
        return 4 * (ceil_div(held, replicas) if sharded else held)
    if (setup.tp, setup.pp) == (1, 1) and not sharded:
        return 4 * _for_loop_peak(shape)
    return 4 * 3 * ceil_div(_largest_tensor(shape), setup.tp)  # an upper bound once tensors are split or sharded


def _step_over(tensors: tuple[int, ...], setup: TrainingSetup) -> int:
    """Bytes torch.optim's AdamW allocates stepping fp32 tensors of these values on one GPU:
    every sqrt at once (foreach), or a tensor's sqrt and quotient beside the previous
    tensor's denominator (the for-loop); none when fused, or for SGD and bitsandbytes."""
    if setup.optimizer != "adamw" or setup.step_impl == "fused":
        return 0
    if setup.step_impl == "foreach":
        return 4 * sum(tensors)
    return 4 * max(before + 2 * size for before, size in zip((0, *tensors), tensors))


@lru_cache(maxsize=256)
def _for_loop_peak(shape: ModelShape) -> int:
    """Values of the for-loop's fullest moment: the previous tensor's denominator and the
    current one's sqrt and quotient, at the worst neighbours (two blocks show them all)."""
    sizes = (0, *parameter_tensors(shape.replace(layers=min(shape.layers, 2))))
    return max(before + 2 * size for before, size in zip(sizes, sizes[1:]))


@lru_cache(maxsize=256)
def _largest_block_tensor(shape: ModelShape) -> int:
    """Values of a block's largest parameter tensor: the tensors a model of two blocks has
    beyond a model of one."""
    two, one = Counter(parameter_tensors(shape.replace(layers=2))), Counter(parameter_tensors(shape.replace(layers=1)))
    return max((two - one).elements())


@lru_cache(maxsize=256)
def _largest_tensor(shape: ModelShape) -> int:
    return max(parameter_tensors(shape.replace(layers=min(shape.layers, 2))))


def _counted_per_block(row) -> bool:
    """Whether a row kept once a step is kept by every block (its formula starts with L:
    CUDA attention's RNG state, L·24 bytes), not once in all (the causal mask)."""
    return bool(row.formula.terms and row.formula.terms[0] and row.formula.terms[0][0] == "L")


def _parts(shape: ModelShape, setup: TrainingSetup, stage: str = "last", at: Pass | None = None) -> dict[str, int]:
    """Byte values of the parts the moments add up on one GPU, for the setup's batch: the
    `stage` ("first" or "last"; the same when pp = 1) of the layout's pipeline, its states
    under ZeRO, its tensor-parallel share of the activations. One GPU is the layout
    dp = tp = pp = 1. Under PyTorch's pipeline schedules, `at` is the pass of the
    stage's schedule (calc.layout.schedule) the moments are in, or None for the
    optimizer step after them all: what the pass finds alive is laid over the parts the
    passes share (a handful of them a stage, the solver judging thousands of layouts), with
    FSDP2's gathered parameters and buffers at that pass (calc.layout.frameworks.fsdp2_pipeline)."""
    shared = _shared_parts(shape, setup, stage, _accumulating(setup, at), _copies_held(setup, at))
    if not runs_torch_pipeline(setup):
        return shared
    here = _stage(shape, setup, stage)
    loss = setup.stream_bytes if here.head > 0 else 0
    parts = shared | _torch_pipeline_parts(shape, setup, at, here, shared["A"], loss)
    if gathers_and_reduces(setup):  # FSDP2 in the pipeline: what the pass finds gathered, the shards at the step
        parts |= pass_buffers(shape, setup, here, at)
        parts["E_h"] = parts["E_hl"]  # the head-backward moment's: the loss's, before FSDP2 gathers the root
        if at is None:
            parts["G"] = sharded_stage_states(shape, setup, here, 0)[1]
        elif setup.dtype == "bf16-master":  # the root's new gradients stay bf16 until its post-backward
            root = root_values(shape, here)
            parts["G_h"] = 2 * here.head
            # at the embedding's backward G holds the blocks' fp32 gradients and the root's new bf16 ones, and
            # from the second micro-batch on the fp32 ones of every parameter beside those
            parts["G"] += 2 * root if at.accumulated else -2 * root
    return parts


@lru_cache(maxsize=4096)
def _shared_parts(shape: ModelShape, setup: TrainingSetup, stage: str, accumulating: bool,
                  copies_held: bool) -> dict[str, int]:
    """_parts but what a pipeline pass alone decides (its micro-batches in flight, sent
    handles, losses: calc.peak._torch_pipeline_parts), for gradients `accumulating` into
    held ones or not and autocast's cache holding the copies (`copies_held`) or not."""
    B, L, s, V = setup.batch, shape.layers, shape.context, shape.vocab
    t, p, N = setup.tp, setup.pp, setup.dp * setup.cp  # ZeRO shards over the data-parallel and context ranks
    s = ceil_div(s, setup.cp)  # the tokens of each sequence on this GPU
    a = setup.bytes_per_value
    first_stage, last_stage = stages(shape, setup)
    here = first_stage if stage == "first" else last_stage
    has_embedding, has_head = here.embedding > 0, here.head > 0
    layers = here.layers
    chunks, in_flight = setup.in_flight() if (p > 1 and stage == "first") else (setup.virtual_stages, 1)
    torch_pipeline = runs_torch_pipeline(setup)
    weights, grad, kept = state_bytes(setup)
    held_weights, held_grads, held_optimizer = held_states(shape, setup, here.parameters, N)
    lora = trains_adapters(setup)
    if lora:  # the adapters' gradients: fp32
        grad = 4
    reduced = setup.zero >= 2 and N > 1  # ZeRO-2/3 reduce-scatter each block's gradients into the shard as made
    fsdp2 = gathers_and_reduces(setup)
    pipelined_fsdp2 = fsdp2 and torch_pipeline
    if pipelined_fsdp2:  # no reduce-scatter until every micro-batch is done: the stage's gradients held whole
        held_weights, _, held_optimizer = sharded_stage_states(shape, setup, here, kept)
        grad = REDUCE_BYTES
        held_grads = grad * here.parameters
        fsdp2 = reduced = False  # gathered parameters and buffers: calc.layout.frameworks.fsdp2_pipeline, by pass
    elif fsdp2:  # FSDP2 pads each tensor, holds the root's gradients unsharded until backward ends
        held_weights, held_grads, held_optimizer = sharded_states(shape, setup, kept)
        grad = parameter_dtype_bytes(setup)
    if has_embedding:  # DTensor's is V·d, not V/t·d
        held_grads += whole_embedding_excess(shape, setup) * grad
    fresh_grads = not accumulating or reduced  # new gradients not yet in the held ones
    stream = setup.stream_bytes  # the loss, the log-probabilities and their gradients
    loss = stream if has_head else 0
    vocab = ceil_div(V, t)  # vocabulary-parallel: the head's and the loss's share
    bf16 = setup.dtype == "bf16"

    sums = _saved_sums(shape, setup)
    block = sums["block"] // L
    embedding = sums["embedding"] if has_embedding else 0
    head = sums["head"] if has_head else 0
    per_step = (sums["block-per-step"] * layers // L + sums["block-once"]
                + (sums["embedding-per-step"] if has_embedding else 0))
    head_per_step = sums["head-per-step"] if has_head else 0
    checkpointed = setup.checkpoint == "block"
    trainable_layers = layers - setup.frozen_blocks  # frozen layers (one GPU: calc.frozen) cache no copy, train nothing
    if setup.freezes and not checkpointed:  # a trainable layer's saved bytes, counted for the first one too (which
        block = _saved_sums(shape, _unfrozen(setup))["block"] // L if trainable_layers else 0  # keeps less: a bound)
    before_last = sums["block"] - block if setup.freezes else (layers - 1) * block  # the earlier blocks' saved bytes
    one_micro_batch = embedding + (sums["block"] if setup.freezes else layers * block) + head
    trainable_block = adapters_per_layer(shape, setup) if lora else here.block  # a block's parameters that train
    block_copies = 2 * (adapters_per_layer(shape, setup) if lora else here.block_matrices) if bf16 else 0
    cached = block_copies + (2 * _linear_biases(shape, t) if bf16 and shape.bias else 0)  # autocast's cache
    head_copy = 2 * here.head_matrix if bf16 and not lora else 0  # LoRA: the frozen head's copy is an activation
    steps_on_device = setup.device == "cpu" or setup.step_impl == "fused"
    # tied: the head's gradient of the shared matrix waits for the embedding's, to be added to it
    tied_head_grad = here.head_matrix * grad if shape.tied and p == 1 else 0
    head_grads = 0 if lora else here.head * grad + tied_head_grad
    fsdp2_buffers = dict.fromkeys(FSDP2_PARTS, 0)
    if fsdp2:
        fsdp2_buffers = buffers_by_moment(shape, setup, accumulating)
        if not accumulating:  # G counts the final shards; F_z what the rank holds instead
            fsdp2_buffers["F_z"] -= held_grads
    return {
        "W": held_weights + held_optimizer,
        "X": buffer_bytes(shape) + (STEP_COUNT_BYTES * (len(adapter_tensors(shape, setup)) if lora else
                                                        len(trainable_tensors(shape, setup)) if setup.freezes else
                                                        here.tensors)
                                    if steps_on_device and setup.optimizer == "adamw" else 0),
        "I": B * s * INDEX_BYTES * (has_embedding + has_head) * (setup.microbatches if torch_pipeline else 1),
        "A": one_micro_batch + per_step + head_per_step,
        "A_hf": one_micro_batch + per_step - (sums["log-probs"] - B * s * vocab * a if has_head else 0),
        "A_m": (in_flight - 1) * embedding + (chunks - setup.virtual_stages) * (layers // setup.virtual_stages) * block,
        "A_p": 0, "A_o": 0, "B_q": 0,  # PyTorch's pipeline passes: _torch_pipeline_parts
        "C": 0 if copies_held else trainable_layers * cached + head_copy,
        "C_a": trainable_layers * cached + head_copy if copies_held else 0,
        "A_f": embedding + before_last + sums["block-once"] + sums["block-per-step"] * (layers - 1) // L
        + (sums["embedding-per-step"] if has_embedding else 0),
        "C_f": 0 if copies_held else max(trainable_layers - 1, 0) * cached,
        "C_g": 0 if copies_held else (0 if checkpointed else trainable_layers * block_copies) + head_copy,
        "K": loss + (B * s * vocab * a if setup.keep_logits and has_head else 0),
        "K_l": 2 * loss,
        "A_e": embedding + per_step + head_per_step,
        "A_z": embedding + (sums["embedding-per-step"] if has_embedding else 0) + head_per_step,
        "A_b": block,
        "A_h": head + head_per_step,
        "A_g": embedding + sums["block-once"] + (sums["embedding-per-step"] if has_embedding else 0),
        "A_l": before_last,
        "C_b": 0 if checkpointed or copies_held or not trainable_layers else block_copies,
        "G": held_grads,
        "G_a": held_grads if accumulating else 0,
        "T_c": 4 * B * s * shape.kv_heads * shape.d_head * a if setup.cp > 1 else 0,
        "G_B": max(trainable_layers - 1, 0) * trainable_block * grad if fresh_grads and not reduced else 0,
        "G_h": head_grads if fsdp2 else 0 if reduced else head_grads if fresh_grads else tied_head_grad,
        "T_f": B * s * vocab * (a + (4 if bf16 and not bf16_log_softmax(setup) else 0)) if has_head else 0,
        "T_l": B * s * (vocab + 3) * 4 - head_per_step if has_head and runs_dtensor(setup) else 0,
        **{symbol: max(line.at(B) for line in lines)
           for symbol, lines in _rise_lines(shape, setup, here, accumulating, copies_held).items()},
        "T_o": optimizer_temporaries(shape, setup, here.parameters),
        **buffers(setup, here.parameters, here.block, weights, grad, held_grads),
        "X_s": B * s * shape.d_model * stream if gathers_and_reduces(setup) else 0,
        "X_g": B * s * shape.d_model * stream * (1 if has_embedding else 2) if pipelined_fsdp2 else 0,
        "X_r": 0 if has_embedding or not pipelined_fsdp2 else 2 * B * s * shape.d_model * stream,
        "B_g": B * s * shape.d_model * stream if megatron_sequence_parallel(setup) else 0,
        **fsdp2_buffers,
    }


def _kept_layers(setup: TrainingSetup, here: Stage) -> int:
    """The blocks on the stage that keep tensors for backward (L_s): all of them, but the
    frozen ones without checkpointing (calc.frozen)."""
    return here.layers - setup.frozen_blocks if setup.freezes and setup.checkpoint != "block" else here.layers


def _unfrozen(setup: TrainingSetup) -> TrainingSetup:
    """The same step with every parameter training."""
    return setup.replace(freeze_embeddings=False, frozen_blocks=0)


def _copies_held(setup: TrainingSetup, at: Pass | None) -> bool:
    """Whether autocast's cache holds every bf16 weight copy of the stage through the pass:
    under bf16 autocast around a PyTorch pipeline's whole step, from the stage's second
    pass on (the cache, filled by its first forward, is cleared only when the step's
    autocast region exits: torch 2.13, aten/src/ATen/autocast_mode.cpp `cached_cast`)."""
    return at is not None and setup.dtype == "bf16" and (at.kind == "backward" or at.microbatch > 0)


def _accumulating(setup: TrainingSetup, at: Pass | None) -> bool:
    """Whether new gradients are added into held ones: at a pass of PyTorch's pipeline
    schedule, once an earlier micro-batch's backward has made them (or into DDP's buckets)."""
    return gradients_into_held(setup) if at is None else at.accumulated or gradients_into_buckets(setup)


def _torch_pipeline_parts(shape: ModelShape, setup: TrainingSetup, at: Pass | None, here: Stage, saved: int,
                          loss: int) -> dict[str, int]:
    """What PyTorch's pipeline schedule keeps on a stage beyond one micro-batch's step
    (torch 2.13, torch/distributed/pipelining/stage.py), at the pass `at` (None: the
    optimizer step), by part:

    - B_q: a receive buffer for each micro-batch's input activations (all but the first
      stage) and for each one's output gradient (all but the last), made at the first
      step and kept for the run (`_create_act_recv_info` line 1428,
      `_create_grad_recv_info` line 1596); a micro-batch in flight's input buffer is the
      input its first block saved (counted in its activations), so it is counted here
      only for the others;
    - A_m: each other micro-batch in flight: its saved activations, and its output,
      which `fwd_cache` keeps until its backward (lines 913-916): the last stage's
      logits, another stage's residual stream;
    - A_p: in a backward, the micro-batch's own output (`fwd_cache`'s, popped for it), and
      the finished micro-batches' outputs and input gradients that the schedule's send
      handles still reference, waited but not dropped (schedules.py lines 902-955 and
      1061-1172: calc.layout.schedule counts them);
    - A_o: in a forward, the last finished micro-batch's output, which the schedule's
      `output` name holds until the new one replaces it (the last stage's, under 1F1B);
    - K and K_l: the micro-batch's loss, and the earlier micro-batches' the schedule keeps
      in `_internal_losses` until the step ends (schedules.py lines 299-339); none at the
      optimizer step.
    """
    B, m, t = setup.batch, setup.microbatches, setup.tp
    s = ceil_div(shape.context, setup.cp)
    tokens = ceil_div(s, t) if setup.sp else s  # the residual stream's, on each tensor-parallel rank
    stream = setup.stream_bytes
    buffer = B * tokens * shape.d_model * stream
    # at the optimizer step the "first" stages' figure is their highest: a middle stage's, with both kinds of buffer
    first, last = (here.embedding > 0 and setup.pp == 2 if at is None else at.stage == 0), here.head > 0
    in_flight = 0 if at is None or at.kind == "reduce" else at.others + 1
    output = B * s * ceil_div(shape.vocab, t) * setup.bytes_per_value if last else buffer
    if at is None:
        return {"B_q": (0 if first else m * buffer) + (0 if last else m * buffer), "A_m": 0, "A_p": 0, "A_o": 0, "K": 0,
                "K_l": 0}
    backward = at.kind == "backward"
    if at.kind == "reduce":  # the schedule has dropped its losses, but the last backward's `loss` and `output`
        return {"B_q": (0 if first else m * buffer) + (0 if last else m * buffer), "A_m": 0,
                "A_p": at.sent * buffer, "A_o": output if last else 0, "K": loss, "K_l": loss}
    return {"B_q": (0 if first else (m - in_flight) * buffer) + (0 if last else m * buffer),
            "A_m": at.others * (saved + output),
            "A_p": (output if backward else 0) + at.sent * buffer,
            "A_o": output if at.previous_output else 0,
            "K": loss * (at.losses + backward), "K_l": loss * (at.losses + 1)}


WALKED = ("E_f", "E_h", "E_b", "T_e", "E_hl", "E_hh")
"""The parts that rise and fall inside a part of the step, walked op by op (calc.walk); E_hl
and E_hh are E_h's loss and head parts, apart where FSDP2 gathers between them."""


def _rise_lines(shape: ModelShape, setup: TrainingSetup, here: Stage, accumulating: bool | None = None,
                copies_held: bool = False) -> dict[str, tuple[Line, ...]]:
    """E_f, E_h, E_b and T_e on the GPUs of the stage `here`, each the highest of some
    lines in the batch (bytes = per_sequence · B + constant): the walks' highest points;
    for Hugging Face and from-scratch code (and under selective recomputation) E_h and E_b
    are one stated upper bound and E_f is not walked. Remembered by what they depend on:
    the solver's many layouts share them. `accumulating`: whether new gradients are added
    into held ones (calc.layout.frameworks.gradients_into_held when None); `copies_held`:
    whether autocast's cache holds the bf16 weight copies through the walks (C_a counts them).
    FSDP2's unsharded gradients are new in every micro-batch's backward (what it holds
    from earlier ones are shards, G_a), so its walks never accumulate."""
    if accumulating is None:
        accumulating = gradients_into_held(setup)
    # FSDP2's new gradients are fresh in every backward but in a pipeline without its bf16 policy (which
    # casts them into fp32 ones held apart: calc.layout.frameworks.fsdp2_pipeline)
    accumulating = accumulating and not (gathers_and_reduces(setup) and (not runs_torch_pipeline(setup)
                                                                          or setup.dtype == "bf16-master"))
    reduced = _reduced_as_made(setup)
    grad = parameter_dtype_bytes(setup) if gathers_and_reduces(setup) else state_bytes(setup)[1]  # of the new ones
    key = (shape, min(setup.batch, 2), setup.accounting, setup.dtype, setup.attention, setup.checkpoint, setup.device,
           setup.arch, setup.lora_dropout, setup.tp, setup.sp, setup.cp, setup.keeps_gathered_inputs, keeps_whole_embedding_gradient(setup),
           reduces_into_copies(setup), accumulating, reduced, setup.pp == 1, here, grad, _gradient_held(setup, here),
           copies_held, setup.finetune, setup.quant_type, setup.lora_rank, setup.lora_targets, setup.upcast_base,
           setup.freezes,
           setup.frozen_blocks == shape.layers, gathers_and_reduces(setup))
    if key not in _RISES:
        if len(_RISES) > 4096:
            _RISES.clear()
        walks = _walks(shape, setup, here, accumulating, copies_held=copies_held)
        lines = {symbol: rises(walk) for symbol, walk in walks.items()}
        if "E_b" in walks and _gradient_held(setup, here) and here.layers > 1:  # the blocks before the last
            lines["E_b"] += rises(_walks(shape, setup, here, accumulating, False, copies_held)["E_b"])
        if "E_b" not in walks:
            trains = ((adapters_per_layer(shape, setup),) * 2 + (0, 0) if trains_adapters(setup)
                      else (0, 0, here.head, here.head_matrix) if setup.frozen_blocks == shape.layers
                      else (here.block, here.block_matrices, here.head, here.head_matrix))  # what has gradients
            lines |= _bound_lines(shape, setup.replace(batch=1), accumulating, here.head > 0, *trains)
        if "E_h" in walks:  # the loss's backward, then the head's and final norm's
            lines["E_hl"] = rises_where(walks["E_h"], LOSS_OPS.__contains__)
            lines["E_hh"] = rises_where(walks["E_h"], lambda at: at not in LOSS_OPS)
        elif "E_h" in lines:
            lines["E_hl"] = lines["E_hh"] = lines["E_h"]
        if "T_e" in lines:  # G (FSDP2: F_z) counts the gradients the embeddings' backward makes, when fresh
            embedding = here.embedding + (whole_embedding_excess(shape, setup) if here.embedding else 0)
            made = Line(0, embedding * grad if not accumulating or reduced else 0)
            lines["T_e"] = tuple(line - made for line in lines["T_e"])
        _RISES[key] = {symbol: lines.get(symbol, (Line(0),)) for symbol in WALKED}
    return _RISES[key]


_RISES: dict = {}


def whole_embedding_excess(shape: ModelShape, setup: TrainingSetup) -> int:
    """Values of the token embedding's gradient beyond the GPU's share of the vocabulary,
    where the framework computes it whole (calc.layout.frameworks.keeps_whole_embedding_gradient)."""
    if not keeps_whole_embedding_gradient(setup):
        return 0
    return (shape.vocab - ceil_div(shape.vocab, setup.tp)) * shape.d_model


def _gradient_held(setup: TrainingSetup, here: Stage) -> bool:
    """Whether the gradient of the stage's output arrives in a buffer held all run: a stage
    before the last of PyTorch's pipeline schedules (calc.layout.schedule)."""
    return runs_torch_pipeline(setup) and here.head == 0


def _reduced_as_made(setup: TrainingSetup) -> bool:
    """Whether each gradient leaves the backward pass's accounting as it is made: ZeRO-2/3
    reduce-scatter each one into its shard; FSDP2 a block's together at its post-backward
    (calc.layout.frameworks.fsdp2_buffers's parts count them), the root's when backward ends."""
    return setup.zero >= 2 and setup.dp * setup.cp > 1 and not gathers_and_reduces(setup)


def moment_ops(shape: ModelShape, setup: TrainingSetup) -> dict[str, str]:
    """The op at which each walked moment of the fullest GPU is reached, by moment key, as
    a sentence names it ("softmax's backward")."""
    walks = _walks(shape, setup, _stage(shape, setup, fullest_stage(shape, setup)))
    ops = {}
    for moment in moments_for(setup):
        for term in moment.formula:
            if term[0] in walks:
                ops[moment.key] = highest_at(walks[term[0]], setup.batch)
    return ops


def _walks(shape: ModelShape, setup: TrainingSetup, here: Stage, accumulating: bool | None = None,
           gradient_held: bool | None = None, copies_held: bool = False) -> dict:
    """The walks of the parts on the GPUs of the stage `here`, by the part they give. They
    depend on the batch only as one sequence or more, and on the layout only through the
    tensor- and context-parallel split and whether gradients are accumulated, reduced as
    made, or tied across the whole model."""
    reduced = _reduced_as_made(setup)
    plain = setup.replace(batch=min(setup.batch, 2), dp=1, zero=0, pp=1, virtual_stages=1, microbatches=1,
                          framework="auto")
    return _walks_remembered(shape, plain, here.head > 0, here.embedding > 0 and setup.finetune == "full",
                             gradient_held=_gradient_held(setup, here) if gradient_held is None else gradient_held,
                             copies_held=copies_held,
                             accumulating=(gradients_into_held(setup) if accumulating is None else accumulating)
                             and not reduced,
                             tied=shape.tied and setup.pp == 1 and not reduced,
                             reduce_copies=reduces_into_copies(setup), gathers=keeps_gathered_inputs(setup),
                             whole_embedding=keeps_whole_embedding_gradient(setup), loss_parallel=runs_dtensor(setup),
                             megatron_sp=megatron_sequence_parallel(setup),
                             table_casts=input_casts(shape, setup) if gathers_and_reduces(setup) else 0)


@lru_cache(maxsize=512)
def _walks_remembered(shape: ModelShape, setup: TrainingSetup, has_head: bool, has_embedding: bool,
                      gradient_held: bool, copies_held: bool, accumulating: bool, tied: bool, reduce_copies: bool, gathers: bool,
                      whole_embedding: bool, loss_parallel: bool, megatron_sp: bool, table_casts: int = 0) -> dict:
    """The embeddings' backward for any implementation; a block's forward and backward and
    the head's backward for the reference implementation. With `gradient_held` (a stage of
    PyTorch's pipeline before the last) the last block's output gradient is the schedule's
    receive buffer; of more blocks, the others' is made by the next block, and E_b is the
    higher of the two walks (a bound for those stages)."""
    z = sizes(shape, setup, accumulating=accumulating, reduce_copies=reduce_copies, gathers=gathers,
              loss_parallel=loss_parallel, megatron_sp=megatron_sp, gradient_held=gradient_held,
              copies_held=copies_held, table_casts=table_casts)
    walks = {}
    if has_embedding:
        walks["T_e"] = embedding_walk(shape, setup, z, tied=tied, rows=shape.vocab if whole_embedding else z.vocab)
    if walks_apply(shape, setup):
        attention = attention_rows(shape, setup)
        walks["E_f"] = block_forward_walk(shape, setup, z, attention)
        walks["E_b"] = block_walk(shape, setup, z, attention)
        if has_head:
            walks["E_h"] = head_walk(shape, setup, z)
    return walks


@lru_cache(maxsize=512)
def _bound_lines(shape: ModelShape, setup: TrainingSetup, accumulating: bool, has_head: bool, block_parameters: int,
                 block_matrices: int, head_parameters: int, head_matrix: int) -> dict[str, tuple[Line, ...]]:
    """E_b and E_h where no walk describes the code: a block's new gradients (or,
    accumulating, its largest one's before it is added in) and its largest gradients alive
    together, with its recomputed tensors; at the head, the larger of the log-probabilities'
    and logits' gradients, and the head's new gradients with the logits' and its input's."""
    reduced = setup.zero >= 2 and setup.dp * setup.cp > 1
    t, s, a, bf16 = setup.tp, ceil_div(shape.context, setup.cp), setup.bytes_per_value, setup.dtype == "bf16"
    _, grad, _ = state_bytes(setup)
    stream = setup.stream_bytes
    vocab = ceil_div(shape.vocab, t)
    fresh = not accumulating or reduced
    widest = (3 if shape.ffn == "swiglu" else 2) * shape.d_ff // t
    if setup.attention == "explicit":
        widest = max(widest, 2 * shape.heads // t * s)
    copies = 2 * block_matrices if bf16 else 0
    sums = _saved_sums(shape, setup)
    recomputed = (Line(sums["recomputed-block"] // shape.layers, copies) if setup.checkpoint == "block"
                  else Line(shape.heads // t * s * s * a) if (setup.checkpoint == "selective"
                                                              and setup.attention == "explicit") else Line(0))
    new = Line(0, block_parameters * grad if fresh else
               ceil_div(_largest_block_tensor(shape), t) * (2 + grad if bf16 else grad))
    # QLoRA: bitsandbytes dequantizes each 4-bit weight to bf16 for its matmul, one at a time, forward and
    # backward; in forward peft's 4-bit layer copies the base's output (`result.clone()`) beside it. Over a
    # base prepare_model_for_kbit_training cast to fp32, bitsandbytes' layer casts its input to bf16 and its
    # bf16 output back to fp32 before peft's copy (a bound of 12 bytes a d_ff-wide value), and in backward
    # the gradients it receives and returns are cast the same way (4 bytes a d_ff-wide value)
    # Over an int8 base the backward makes the same bf16 copy of each weight (and of its row scales,
    # MatMul8bitFp/MatMul8bitLt.backward); in forward the CPU makes it too, and CUDA instead quantizes the
    # input (an fp16 copy and an int8 one) and multiplies into int32 before its bf16 output: a bound of
    # 7 bytes a d_ff-wide value, beside the 4 peft's layer adds
    int8 = setup.finetune == "qlora" and setup.quant_type == "int8"
    dequantized = Line(0, 2 * max(d_in * d_out for _, d_in, d_out in layer_linears(shape))
                       + (4 * max(d_out for _, _, d_out in layer_linears(shape)) if int8 else 0)
                       if setup.finetune == "qlora" else 0)
    casts = Line(4 * s * shape.d_ff if setup.upcast_base else 0)
    block = new + Line(s * widest * a) + recomputed + dequantized + casts
    forward = {"E_f": (dequantized + Line((12 if setup.upcast_base else 11 if int8 else 4) * s * shape.d_ff),)} \
        if setup.finetune == "qlora" else {}
    if not has_head:
        return {"E_b": (block,), **forward}
    head_grads = (head_parameters + (head_matrix if shape.tied and setup.pp == 1 else 0)) * grad
    weight = Line(stream * s * (vocab + shape.d_model) - sums["log-probs"],
                  (head_grads if fresh else 0) + (head_matrix * (6 if bf16 else grad) if accumulating else 0))
    return {"E_b": (block,), "E_h": (Line(s * vocab * 2 * stream), weight), **forward}


def _linear_biases(shape: ModelShape, t: int) -> int:
    """A block's linear layers' bias values on one GPU (the column-parallel ones split)."""
    widths = (shape.heads * shape.d_head, 2 * shape.kv_heads * shape.d_head, shape.d_ff,
              shape.d_ff if shape.ffn == "swiglu" else 0)
    return sum(ceil_div(width, t) for width in widths) + 2 * shape.d_model


SUMS_DEPEND_ON = (*ROWS_DEPEND_ON, "batch")


def _saved_sums(shape: ModelShape, setup: TrainingSetup) -> dict[str, int]:
    """A GPU's saved bytes for the setup's batch, summed by where they are kept: the blocks'
    (all L), the embedding's, the head's (the loop's inputs apart), what is kept once a step
    (by every block, with the factor L, and once in all), the log-probabilities, and under
    checkpointing the blocks' saved bytes had they not been recomputed."""
    def make() -> dict[str, int]:
        B, inputs = setup.batch, _INPUT_ROWS[shape.implementation]
        saved = tuple(r for r in split_rows(shape, setup) if r.key not in inputs)

        def total(rows) -> int:
            return sum(r.bytes_for_batch(B) for r in rows)

        per_block = [r for r in saved if r.stage == "block" and r.per_step]
        sums = {f"{where}{'-per-step' if once else ''}": total(r for r in saved if r.stage == where and r.per_step == once)
                for where in ("block", "embedding", "head") for once in (False, True)}
        sums["block-per-step"] = sum(r.bytes for r in per_block if _counted_per_block(r))
        sums["block-once"] = sum(r.bytes for r in per_block if not _counted_per_block(r))
        sums["log-probs"] = total(r for r in saved if r.key == "log-probs")
        recomputed = split_rows(shape, replace(setup, checkpoint="none")) if setup.checkpoint == "block" else ()
        sums["recomputed-block"] = total(r for r in recomputed if r.stage == "block" and not r.per_step)
        return sums
    return remember("sums", shape, setup, SUMS_DEPEND_ON, make)


_HELD = (("W",), ("X",), ("I",), ("B_n",), ("B_g",), ("B_d",), ("B_q",))
MOMENTS = (
    Moment("block-forward", "Forward through the last block",
           (*_HELD, ("A_f",), ("A_m",), ("A_p",), ("C_a",), ("A_o",), ("C_f",), ("K",), ("G_a",), ("E_f",), ("B_p",), ("F_f",))),
    Moment("forward-end", "End of the forward pass",
           (*_HELD, ("A",), ("A_m",), ("A_p",), ("C_a",), ("C",), ("K_l",), ("G_a",), ("T_f",), ("B_p",), ("F_e",))),
    Moment("head-backward", "Backward through the loss, LM head and final norm",
           (*_HELD, ("A",), ("A_m",), ("A_p",), ("C_a",), ("C_g",), ("K",), ("G_a",), ("E_h",), ("B_p",), ("B_r",), ("F_h",))),
    Moment("last-block-backward", "Backward through the last block",
           (*_HELD, ("A_e",), ("A_m",), ("A_p",), ("C_a",), ("L_s", "A_b"), ("L_s", "C_b"), ("K",), ("G_a",), ("G_h",), ("E_b",),
            ("T_c",), ("B_p",), ("B_r",), ("F_l",))),
    Moment("first-block-backward", "Backward through the first block",
           (*_HELD, ("A_e",), ("A_m",), ("A_p",), ("C_a",), ("A_b",), ("C_b",), ("K",), ("G_a",), ("G_h",), ("G_B",), ("E_b",),
            ("T_c",), ("B_p",), ("B_r",), ("F_1",))),
    Moment("embedding-backward", "Backward through the embedding",
           (*_HELD, ("A_z",), ("A_m",), ("A_p",), ("C_a",), ("K",), ("G",), ("T_e",), ("B_p",), ("B_r",), ("F_z",))),
    Moment("optimizer-step", "The optimizer step", (*_HELD, ("K",), ("G",), ("T_o",))),
)
LOSS_PARALLEL_MOMENTS = (
    Moment("log-softmax-inside", "Inside DTensor's vocabulary-parallel log-softmax",
           (*_HELD, ("A",), ("A_m",), ("A_p",), ("C_a",), ("C",), ("K",), ("G_a",), ("T_f",), ("T_l",), ("B_p",))),
)
"""Under DTensor's tensor parallelism loss_parallel computes log-softmax on each rank's
share of the vocabulary, written out (torch 2.13, torch/distributed/tensor/parallel/
loss.py `_log_softmax`): the logits shifted by their maximum, their exponentials (freed
once summed), then the result, while the shifted logits, the maximum, the sum and its
logarithm (one value a token each) are alive."""
FSDP2_MOMENTS = (
    Moment("fsdp2-gather-first", "FSDP2 copies the first block's parameters out",
           (*_HELD, ("G_a",), ("A_g",), ("X_s",), ("K",), ("F_g0",))),
    Moment("fsdp2-gather-last", "FSDP2 copies the last block's parameters out",
           (*_HELD, ("G_a",), ("A_f",), ("X_s",), ("K",), ("F_gL",))),
    Moment("fsdp2-regather-root", "FSDP2 gathers the root again as backward starts",
           (*_HELD, ("G_a",), ("A",), ("K",), ("F_r",))),
    Moment("fsdp2-gather-backward", "FSDP2 copies the last block's parameters out for backward",
           (*_HELD, ("G_a",), ("A_e",), ("L_s", "A_b"), ("K",), ("G_h",), ("X_s",), ("F_gb",))),
    Moment("fsdp2-reduce-last", "FSDP2 reduce-scatters the last block's gradients",
           (*_HELD, ("G_a",), ("A_e",), ("A_l",), ("K",), ("G_h",), ("X_s",), ("F_rl",))),
    Moment("fsdp2-reduce-scatter-last", "FSDP2's reduce-scatter of the last block's gradients runs",
           (*_HELD, ("G_a",), ("A_e",), ("A_l",), ("K",), ("G_h",), ("X_s",), ("F_rs",))),
    Moment("fsdp2-gather-next", "FSDP2 copies the next block's parameters out for backward",
           (*_HELD, ("G_a",), ("A_e",), ("A_l",), ("K",), ("G_h",), ("X_s",), ("F_gn",))),
    Moment("fsdp2-reduce-first", "FSDP2 reduce-scatters the first block's gradients",
           (*_HELD, ("G_a",), ("A_z",), ("K",), ("G_h",), ("X_s",), ("F_rf",))),
    Moment("fsdp2-reduce-scatter-first", "FSDP2's reduce-scatter of the first block's gradients runs",
           (*_HELD, ("G_a",), ("A_z",), ("K",), ("G_h",), ("X_s",), ("F_rs1",))),
    Moment("fsdp2-reduce-root", "FSDP2 reduce-scatters the root's gradients as backward ends",
           (*_HELD, ("G_a",), ("A_z",), ("K",), ("F_rr",))),
    Moment("fsdp2-reduce-scatter-root", "FSDP2's reduce-scatter of the root's gradients runs",
           (*_HELD, ("G_a",), ("A_z",), ("K",), ("F_rsr",))),
)
"""The moments FSDP2's collectives add (calc.layout.frameworks.fsdp2_buffers), where what
they gather or reduce outweighs what the step computes: each holds the activations alive
around it."""


FSDP2_PIPELINE_MOMENTS = (
    Moment("fsdp2-gather-first", "FSDP2 copies the first block's parameters out",
           (*_HELD, ("G_a",), ("A_g",), ("A_m",), ("A_p",), ("A_o",), ("C_a",), ("X_s",), ("K",), ("F_g0",))),
    Moment("fsdp2-gather-last", "FSDP2 copies the last block's parameters out",
           (*_HELD, ("G_a",), ("A_f",), ("A_m",), ("A_p",), ("A_o",), ("C_a",), ("X_s",), ("K",), ("F_gL",))),
    Moment("fsdp2-head-forward", "The head's forward, before the stage's forward ends and FSDP2 frees its buffer",
           (*_HELD, ("G_a",), ("A_hf",), ("A_m",), ("A_p",), ("A_o",), ("C_a",), ("K",), ("F_hf",))),
    Moment("fsdp2-regather-root", "FSDP2 gathers the root again as backward starts",
           (*_HELD, ("G_a",), ("A",), ("A_m",), ("A_p",), ("C_a",), ("K",), ("F_r",))),
    Moment("fsdp2-head-backward", "Backward through the LM head and final norm, the root gathered again",
           (*_HELD, ("A",), ("A_m",), ("A_p",), ("C_a",), ("C_g",), ("K",), ("G_a",), ("E_hh",), ("F_hb",))),
    Moment("fsdp2-gather-backward", "FSDP2 copies the last block's parameters out for backward",
           (*_HELD, ("G_a",), ("A_e",), ("L_s", "A_b"), ("A_m",), ("A_p",), ("C_a",), ("K",), ("G_h",), ("X_s",),
            ("F_gb",))),
    Moment("fsdp2-cast-first", "FSDP2 casts the first block's new bf16 gradients into the fp32 ones it holds",
           (*_HELD, ("G_a",), ("A_z",), ("A_m",), ("A_p",), ("C_a",), ("K",), ("G_h",), ("X_g",), ("F_cb",))),
    Moment("fsdp2-cast-root", "FSDP2 casts the root's new bf16 gradients into the fp32 ones it holds",
           (*_HELD, ("G_a",), ("A_z",), ("A_m",), ("A_p",), ("C_a",), ("K",), ("X_r",), ("F_cr",))),
    Moment("fsdp2-reduce-stage-root", "FSDP2 reduce-scatters the stage root's gradients, every micro-batch done",
           (*_HELD, ("A_p",), ("A_o",), ("K",), ("F_Rr",))),
    Moment("fsdp2-reduce-stage-first", "FSDP2 reduce-scatters the first block's gradients, every micro-batch done",
           (*_HELD, ("A_p",), ("A_o",), ("K",), ("F_R1",))),
)
"""FSDP2's moments inside PyTorch's pipeline schedules (calc.layout.frameworks.fsdp2_pipeline):
gathering in a pass's forward or backward, with the micro-batches in flight; reduce-scattering
once every micro-batch is done (`perform_reduce_grad`)."""
REDUCE_MOMENTS = ("fsdp2-reduce-stage-root", "fsdp2-reduce-stage-first")
"""The moments of a pipeline stage's reduce-scatter, after its passes."""


def moments_for(setup: TrainingSetup) -> tuple[Moment, ...]:
    """The moments walked for the setup: FSDP2's own beside the step's, where it runs;
    inside DTensor's vocabulary-parallel log-softmax under its tensor parallelism."""
    fsdp2 = (FSDP2_PIPELINE_MOMENTS if runs_torch_pipeline(setup) else FSDP2_MOMENTS) if gathers_and_reduces(setup) else ()
    return MOMENTS + fsdp2 + (LOSS_PARALLEL_MOMENTS if runs_dtensor(setup) else ())


FORWARD_MOMENTS = ("block-forward", "forward-end", "log-softmax-inside", "fsdp2-gather-first", "fsdp2-gather-last",
                   "fsdp2-head-forward")
"""The moments inside a micro-batch's forward pass (with its loss); the others but the
optimizer step's are inside its backward pass."""


def _runs(setup: TrainingSetup, stage: str) -> tuple[tuple[Pass | None, tuple[Moment, ...]], ...]:
    """The stretches of the step whose moments are walked with one set of parts: the whole
    step; under PyTorch's pipeline schedules each pass of the stage's schedule (on "first",
    of the first two: the second holds one micro-batch fewer in flight than the first but
    receive buffers for its inputs too, and the later ones fewer still), with its forward
    or backward moments, then the optimizer step."""
    moments = moments_for(setup)
    if not runs_torch_pipeline(setup):
        return ((None, moments),)
    forward = tuple(m for m in moments if m.key in FORWARD_MOMENTS)
    backward = tuple(m for m in moments if m.key not in (*FORWARD_MOMENTS, *REDUCE_MOMENTS, "optimizer-step"))
    reduce = tuple(m for m in moments if m.key in REDUCE_MOMENTS)
    indices = range(min(2, setup.pp - 1)) if stage == "first" else (setup.pp - 1,)
    return (*((at, forward if at.kind == "forward" else backward)
              for here in indices
              for at in fullest(here, setup.pp, setup.microbatches, setup.schedule, gathers_and_reduces(setup))),
            *((reduce_pass(here, setup.pp, setup.microbatches, setup.schedule), reduce) for here in indices if reduce),
            (None, tuple(m for m in moments if m.key == "optimizer-step")))


def _moment_values(shape: ModelShape, setup: TrainingSetup, stage: str) -> tuple[tuple[dict, str], ...]:
    """For each moment (moments_for), the parts' values at it on the stage's GPUs and, under
    PyTorch's pipeline schedules, the pass of its schedule at which it is highest."""
    layers = {"L_s": _kept_layers(setup, _stage(shape, setup, stage))}
    best: dict[str, tuple[int, dict, str]] = {}
    for at, moments in _runs(setup, stage):
        values = _parts(shape, setup, stage, at) | layers
        where = "" if at is None else (f"{at.kind} of micro-batch {at.microbatch + 1} of {setup.microbatches}"
                                       + (f", {at.others} more in flight" if at.others else ""))
        for m in moments:
            total = _formula_bytes(m, values)
            if m.key not in best or total > best[m.key][0]:
                best[m.key] = (total, values, where)
    return tuple(best[m.key][1:] for m in moments_for(setup))


def pass_bytes(shape: ModelShape, setup: TrainingSetup, here: int) -> dict[str, int]:
    """Under PyTorch's pipeline schedules, the most tensor bytes alive on the GPUs of stage
    `here` (0 first) in each pass of its schedule ("forward-0", "backward-0", … by
    micro-batch, from 0) and at the optimizer step ("optimizer"), as
    validation/distributed.py --pp records each rank's phases."""
    stage = "last" if here == setup.pp - 1 else "first"
    layers = {"L_s": _kept_layers(setup, _stage(shape, setup, stage))}
    moments = moments_for(setup)
    out = {}
    for at in every_pass(here, setup.pp, setup.microbatches, setup.schedule):
        values = _parts(shape, setup, stage, at) | layers
        out[f"{at.kind}-{at.microbatch}"] = max(_formula_bytes(m, values) for m in moments
                                                if m.key not in ("optimizer-step", *REDUCE_MOMENTS)
                                                and (m.key in FORWARD_MOMENTS) == (at.kind == "forward"))
    reduce = [m for m in moments if m.key in REDUCE_MOMENTS]
    if reduce:
        values = _parts(shape, setup, stage, reduce_pass(here, setup.pp, setup.microbatches, setup.schedule)) | layers
        out["reduce"] = max(_formula_bytes(m, values) for m in reduce)
    out["optimizer"] = _formula_bytes(moments[-1] if moments[-1].key == "optimizer-step" else next(
        m for m in moments if m.key == "optimizer-step"), _parts(shape, setup, stage) | layers)
    return out


def _formula_bytes(m: Moment, values: dict) -> int:
    return sum(values[term[0]] if len(term) == 1 else prod(values[symbol] for symbol in term) for term in m.formula)


@lru_cache(maxsize=512)
def _moments(shape: ModelShape, setup: TrainingSetup, stage: str) -> Table:
    ops = moment_ops(shape, setup) if stage == fullest_stage(shape, setup) else {}
    rows = tuple(row(values, m.key, m.name, f(*m.formula), 1,
                     note="; ".join(n for n in (f"at {ops[m.key]}" if m.key in ops else "", at) if n))
                 for m, (values, at) in zip(moments_for(setup), _moment_values(shape, setup, stage)))
    where = f" on the {stage} pipeline stage's GPUs" if setup.pp > 1 else " on each GPU" if setup.parallel else ""
    return Table("moments", "Moments of a training step" + where, rows, count_label="bytes", show_total=False,
                 notes=(_MOMENTS_PROVENANCE[setup.device if walks_apply(shape, setup) else "bound"],
                        *((ALLOCATOR_NOTE,) if setup.device == "cuda" else ())))


_MOMENTS_PROVENANCE = {
    "cpu": "Walked op by op; each moment equals, to the byte, a live-tensor timeline of real CPU steps of the "
           "reference implementation at small shapes (validation/timeline.json).",
    "cuda": "Walked op by op with CUDA's rules (autocast's op lists, the attention kernels' saved tensors, which "
            "equal an H200's): the saved tensors are measured; the order ops free them in is the CPU timeline's, "
            "not yet measured as whole steps on a GPU.",
    "bound": "Backward through the head and through a block is a stated upper bound here: not walked for this "
             "implementation (or under selective recomputation, or LoRA), nor measured as whole steps.",
}
"""Where the moments come from, by device where they are walked."""
ALLOCATOR_NOTE = ("These are the tensors' exact bytes. PyTorch's caching allocator hands each tensor a block of 512 "
                  "bytes or more, rounded up, and keeps cuBLAS's workspace: what torch.cuda.max_memory_allocated "
                  "reports is higher (the GPU memory view).")


def _stage(shape: ModelShape, setup: TrainingSetup, stage: str):
    first, last = stages(shape, setup)
    return first if stage == "first" else last


@lru_cache(maxsize=4096)
def _moment_bytes(shape: ModelShape, setup: TrainingSetup, stage: str) -> tuple[int, ...]:
    """Each moment's bytes on a stage's GPUs: the same sums as _moments' rows, without
    building them (the solver asks for thousands)."""
    return tuple(_formula_bytes(m, values) for m, (values, _) in zip(moments_for(setup),
                                                                       _moment_values(shape, setup, stage)))


def moment_bytes(shape: ModelShape, setup: TrainingSetup) -> tuple[int, ...]:
    """Each moment's bytes (moments_for's order) on the fullest GPU of the layout: the
    figures of moments_table, without its rows."""
    return _moment_bytes(shape, setup, fullest_stage(shape, setup))


def fullest_stage(shape: ModelShape, setup: TrainingSetup) -> str:
    """The pipeline stage whose GPUs peak highest: "last" (also with one stage) or "first"."""
    if setup.pp == 1:
        return "last"
    return "first" if max(_moment_bytes(shape, setup, "first")) > max(_moment_bytes(shape, setup, "last")) else "last"


def moments_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Bytes alive at each moment of the step (autograd accounting), for the setup's batch,
    on the fullest GPU of the layout (one GPU when dp = tp = pp = 1)."""
    return _moments(shape, setup, fullest_stage(shape, setup))


def parts_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The parts the moments add up, each in bytes, for the setup's batch (fullest GPU)."""
    stage = fullest_stage(shape, setup)
    values = _parts(shape, setup, stage) | {"L_s": _kept_layers(setup, _stage(shape, setup, stage))}
    rows = tuple(row(values, key, PART_SYMBOLS[key], f((key,)), 1) for key in PART_SYMBOLS)
    return Table("parts", "What the moments add up", rows, count_label="bytes", show_total=False)


BUFFER_PARTS = ("B_n", "B_g", "B_d", "B_r", "B_p")


def buffer_parts(shape: ModelShape, setup: TrainingSetup) -> dict[str, int]:
    """The communication buffers on the fullest GPU, by part symbol (PART_SYMBOLS names
    them), in bytes; zero where the layout has none."""
    parts = _parts(shape, setup, fullest_stage(shape, setup))
    return {key: parts[key] for key in BUFFER_PARTS}


def summed_bytes(shape: ModelShape, setup: TrainingSetup, stage: str) -> int:
    """The seed's, CS336's and Megatron's own peak, which is their sum: model states (under
    ZeRO), autocast's weight copies, the activations in flight on a stage's GPUs and NCCL's
    communicators (on CUDA)."""
    here = _stage(shape, setup, stage)
    states = sum(held_states(shape, setup, here.parameters, setup.dp * setup.cp))
    matrices = here.head_matrix + (0 if setup.checkpoint == "block" else here.layers * here.block_matrices)
    nccl = nccl_bytes(setup)
    return states + (2 * matrices if setup.dtype == "bf16" else 0) + here.activations + nccl


def tensor_peak_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes of the tensors alive at the peak of one training step on the fullest GPU (the
    whole batch on one GPU when dp = tp = pp = 1). calc.fit.peak_bytes adds what the CUDA
    caching allocator adds, where that is worked out."""
    if setup.accounting != "autograd":
        return max(summed_bytes(shape, setup, stage) for stage in ("first", "last"))
    return max(max(_moment_bytes(shape, setup, stage)) for stage in (("first", "last") if setup.pp > 1 else ("last",)))


def peak_floor(shape: ModelShape, setup: TrainingSetup) -> int:
    """A lower bound of the step's peak on the fullest GPU, cheap to work out (no walk):
    every moment holds the parameters and optimizer state (W) and NCCL's memory (B_n), and
    the end of the forward pass one micro-batch's saved activations (A, without what is
    kept once a step, or only for one sequence). The solver skips a layout whose floor is
    over the budget."""
    if setup.accounting != "autograd":
        return 0
    block, embedding, head = _saved_per_sequence(shape, setup)
    replicas = setup.dp * setup.cp
    floor = 0
    for here in stages(shape, setup.replace(batch=1, microbatches=max(setup.pp, 1), virtual_stages=1)):
        weights, _, optimizer = held_states(shape, setup, here.parameters, replicas)
        saved = setup.batch * (block * here.layers + (embedding if here.embedding else 0) + (head if here.head else 0))
        floor = max(floor, weights + optimizer + saved + nccl_bytes(setup))
    return floor


def _saved_per_sequence(shape: ModelShape, setup: TrainingSetup) -> tuple[int, int, int]:
    """Bytes one sequence's saved rows take on a GPU: one block's, the embedding's, the
    head's (the loop's inputs, rows kept once a step and rows kept for one sequence apart)."""
    def make():
        rows = [r for r in split_rows(shape, setup) if r.key not in _INPUT_ROWS[shape.implementation]
                and not r.per_step and not r.at_batch_one]
        block = sum(r.bytes for r in rows if r.stage == "block") // shape.layers
        return (block, sum(r.bytes for r in rows if r.stage == "embedding"),
                sum(r.bytes for r in rows if r.stage == "head"))
    return remember("per-sequence", shape, setup, ROWS_DEPEND_ON, make)


def batch_lines(shape: ModelShape, setup: TrainingSetup) -> list[Line]:
    """Every moment's tensor bytes as lines in the batch from two sequences on, on every
    pipeline stage (the sum, for the accountings without moments): each moment is the
    highest of a few lines c + m·B (the walked parts are the highest of their ops' lines,
    the rest is affine). One sequence is apart: explicit attention copies some views only
    from two sequences on."""
    one, two = setup.replace(batch=1), setup.replace(batch=2)
    if setup.accounting != "autograd":
        at_one, at_two = tensor_peak_bytes(shape, one), tensor_peak_bytes(shape, two)
        return [Line(at_two - at_one, 2 * at_one - at_two)]
    lines = []
    for stage, (at, moments) in ((stage, run) for stage in (("first", "last") if setup.pp > 1 else ("last",))
                                 for run in _runs(setup, stage)):
        rises = _rise_lines(shape, two, _stage(shape, two, stage), _accumulating(two, at), _copies_held(two, at))
        layers = {"L_s": _kept_layers(two, _stage(shape, two, stage))}
        parts = (_parts(shape, one, stage, at) | layers, _parts(shape, two, stage, at) | layers)
        for moment in moments:
            at_one, at_two = _formula_bytes(moment, parts[0]), _formula_bytes(moment, parts[1])
            walked = [term[0] for term in moment.formula if term[0] in rises]
            rest_one = at_one - sum(parts[0][symbol] for symbol in walked)
            rest_two = at_two - sum(parts[1][symbol] for symbol in walked)
            rest = Line(rest_two - rest_one, 2 * rest_one - rest_two)
            if not walked:
                lines.append(rest)
                continue
            symbol, = walked
            lines += [rest + line for line in rises[symbol]]
    return lines


assert not set(PART_SYMBOLS) & set(SYMBOLS), "part symbols must not shadow shape symbols"
