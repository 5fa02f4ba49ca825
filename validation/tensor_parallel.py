"""The reference model under PyTorch's tensor parallelism (DTensor), as torchtitan plans it.

`parallelize(model, mesh, sequence_parallel)` splits a TensorParallelTransformer (the
reference Transformer, validation/reference_model.py) over the ranks of a one-dimensional device mesh, with the plan torchtitan
applies to its Llama (torchtitan/models/llama3/infra/parallelize.py, `apply_tp`):

- the token embedding split by vocabulary (RowwiseParallel), its output replicated, or,
  with sequence parallelism, split by sequence (a reduce-scatter);
- in each block, Q, K, V and the feed-forward's W1 and W3 split by output
  (ColwiseParallel), the attention's output projection and W2 by input (RowwiseParallel,
  an all-reduce; with sequence parallelism a reduce-scatter, and the norms run on each
  rank's tokens (SequenceParallel), the attention's and feed-forward's inputs all-gathered
  first (PrepareModuleInput));
- the head split by vocabulary, its logits left sharded for loss_parallel's
  cross-entropy.

The model's plain parameters become nn.Embedding and nn.Linear modules first (the styles
split only those; the operations are the same), and each attention runs its rank's h/t
heads. Untied heads only (the
reference model ties by sharing one Parameter, which RowwiseParallel and ColwiseParallel
would split two ways). Needs torch (the validation extra), never calc.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel,
                                               SequenceParallel, parallelize_module)

from validation.reference_model import Transformer


def _as_torch_linear(linear) -> nn.Linear:
    d_out, d_in = linear.weight.shape
    module = nn.Linear(d_in, d_out, bias=linear.bias is not None)
    module.weight = linear.weight
    if linear.bias is not None:
        module.bias = linear.bias
    return module


class _Embedding(nn.Embedding):
    def __init__(self, weight):
        super().__init__(*weight.shape)
        self.weight = weight


class _Head(nn.Linear):
    def __init__(self, weight):
        super().__init__(weight.shape[1], weight.shape[0], bias=False)
        self.weight = weight


class TensorParallelTransformer(Transformer):
    """The reference Transformer with its embedding and head as modules (the same
    operations), for the tensor-parallel styles to split."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        assert self.head is not None and self.pos_embed is None, "untied heads, no learned positions"
        self.token_embedding = _Embedding(self.embed)
        self.head_linear = _Head(self.head)
        del self.embed, self.head  # the modules hold them now

    def embed_tokens(self, ids):
        return self.token_embedding(ids)

    def project(self, x):
        return self.head_linear(x)


def parallelize(model, mesh, sequence_parallel: bool):
    """Split `model` (a TensorParallelTransformer) over `mesh` in place; returns it. Its
    logits are then a DTensor split by vocabulary, for `loss` under
    torch.distributed.tensor.parallel.loss_parallel()."""
    t = mesh.size()
    for block in model.blocks:
        for owner, names in ((block.attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                             (block.ffn, ("w1", "w2", "w3"))):
            for name in names:
                if getattr(owner, name, None) is not None:
                    setattr(owner, name, _as_torch_linear(getattr(owner, name)))
        block.attn.h //= t
        block.attn.h_kv //= t
    residual = Shard(1) if sequence_parallel else Replicate()
    parallelize_module(model, mesh, {
        "token_embedding": RowwiseParallel(input_layouts=Replicate(), output_layouts=residual),
        **({"final_norm": SequenceParallel()} if sequence_parallel else {}),
        "head_linear": ColwiseParallel(input_layouts=residual, output_layouts=Shard(-1), use_local_output=False),
    })
    block_plan = {
        "attn.q_proj": ColwiseParallel(), "attn.k_proj": ColwiseParallel(), "attn.v_proj": ColwiseParallel(),
        "attn.o_proj": RowwiseParallel(output_layouts=residual),
        "ffn.w1": ColwiseParallel(), "ffn.w3": ColwiseParallel(), "ffn.w2": RowwiseParallel(output_layouts=residual),
    }
    if sequence_parallel:
        block_plan.update({
            "norm1": SequenceParallel(), "norm2": SequenceParallel(),
            "attn": PrepareModuleInput(input_layouts=(Shard(1), None, None, None, None),
                                       desired_input_layouts=(Replicate(), None, None, None, None)),
            "ffn": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
        })
    for block in model.blocks:
        if block.ffn.w3 is None:
            del block_plan["ffn.w3"]
        parallelize_module(block, mesh, block_plan)
    return model


def loss(model, ids, targets, attention, checkpoint):
    """The mean cross-entropy, a replicated DTensor (call under loss_parallel())."""
    return model.loss(model.logits(ids, attention, checkpoint), targets)
