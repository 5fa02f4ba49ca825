"""Which part of the model each activation row belongs to, for pictures and summaries."""

from __future__ import annotations

CATEGORIES = (
    ("quadratic", "Attention scores/probabilities"),
    ("attention", "Other attention"),
    ("ffn", "Feed-forward"),
    ("norms", "Norms"),
    ("output", "Output layer"),
    ("inputs", "Token ids and block inputs"),
)
CATEGORY_NAMES = dict(CATEGORIES)

_BY_KEY = {
    "seed": {
        "input": "inputs", "attention-input": "attention", "qkv": "attention", "scores": "quadratic",
        "probabilities": "quadratic", "attention-output": "attention", "ffn-input": "ffn", "w1-output": "ffn",
        "w3-output": "ffn", "activation-output": "ffn", "w2-output": "ffn", "final-norm": "output", "logits": "output",
    },
    "cs336": {
        "norms": "norms", "qkv": "attention", "qk": "quadratic", "softmax": "quadratic", "weighted-sum": "attention",
        "output-projection": "attention", "w1": "ffn", "activation": "ffn", "w2": "ffn", "final-norm": "output",
        "output-embedding": "output", "cross-entropy": "output",
    },
    "megatron": {
        "layer-input": "inputs", "layernorm-inputs": "norms", "qkv-input": "attention", "qk": "attention",
        "softmax-output": "quadratic", "softmax-dropout-mask": "quadratic", "dropout-output": "quadratic",
        "v": "attention", "projection-input": "attention", "attention-dropout-mask": "attention",
        "mlp-input": "ffn", "gelu-input": "ffn", "fc2-input": "ffn", "mlp-dropout-mask": "ffn",
    },
    "autograd": {
        "token-ids": "inputs", "position-ids": "inputs", "block-input": "inputs",
        "qkv-input": "attention", "q": "attention", "k": "attention", "v": "attention", "flash-output": "attention",
        "attention-output": "attention", "causal-mask": "quadratic", "probabilities": "quadratic",
        "logsumexp": "quadratic", "ffn-input": "ffn", "w1-output": "ffn", "silu-output": "ffn", "w3-output": "ffn",
        "product": "ffn", "gelu-output": "ffn", "head-input": "output", "log-probs": "output", "target-ids": "output",
        "nll-weight": "output",
    },
}


def category(accounting: str, key: str) -> str:
    """The category key of activation row `key` under `accounting`."""
    if accounting == "autograd":
        if key.startswith(("norm1-", "norm2-")):
            return "norms"
        if key.startswith("final-norm-"):
            return "output"
    return _BY_KEY[accounting][key]
