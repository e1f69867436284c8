"""Feed-forward stacks that every model family builds on."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def build_activation(name: str) -> nn.Module:
    """Return a new activation module for ``name`` (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        msg = f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}"
        raise ValueError(msg) from None


def build_feedforward(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int | None = None,
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Build Linear -> [LayerNorm] -> activation -> [Dropout] for each hidden size.

    With ``out_features``, a final Linear layer without activation follows, so the stack ends
    in logits or regression outputs. Without it, the stack ends in an activation.
    """
    if in_features < 1:
        msg = (
            f"a feed-forward stack needs at least one input feature, got in_features={in_features}"
        )
        raise ValueError(msg)
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden_sizes:
        layers.append(nn.Linear(width, size))
        if layer_norm:
            layers.append(nn.LayerNorm(size))
        layers.append(build_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
