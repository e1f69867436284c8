"""Model architectures: plain ``torch.nn.Module`` classes, one family per module.

Every model's ``forward`` takes some of the batch inputs ``features`` (B, F), ``objects``
(B, N, C) and ``mask`` (B, N) as keyword arguments and returns (B, n_outputs).
"""
