"""How a layout spreads one training step over GPUs.

- split: how data, tensor, pipeline and context parallelism and ZeRO split the model,
  its states and its activations (what each GPU holds);
- frameworks: the rules of each framework that runs a layout (one module each: DDP,
  DeepSpeed, Megatron-LM, FSDP2), the tensor-parallel style it uses, and NCCL's memory;
- per_gpu: the per-GPU table;
- costs: what a layout communicates and idles, which the solver ranks by;
- solver: the fewest GPUs, and the cheapest layout of them, that fit a step.
"""
