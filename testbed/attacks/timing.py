"""Placing a perturbation in time against the command: delays, loops, zero fill.

The sync delay is the adversary's start minus the user's start; a positive delay makes the
perturbation start later (zero before it), a negative one starts it early (its head is lost).
"""

from __future__ import annotations

import torch


def shift_perturbation(delta: torch.Tensor, delay_samples, n_out: int | None = None,
                       loop: bool = False) -> torch.Tensor:
    """Shift ``delta`` by whole samples against the command, zero-filled (or looped).

    Differentiable w.r.t. ``delta`` (a gather), batched, one delay per row.

    Parameters
    ----------
    delta : float tensor (B, L) or (1, L)
    delay_samples : int, or int tensor (B,)
        Output sample ``n`` holds ``delta[n - delay]``; positive: the perturbation starts later.
    n_out : int or None
        Output length in samples (default ``L``).
    loop : bool
        Play ``delta`` in a loop (universal perturbations): ``delta[(n - delay) mod L]``
        everywhere instead of zeros outside ``[delay, delay + L)``.

    Returns
    -------
    float tensor (B, n_out)
    """
    length = delta.shape[-1]
    n_out = length if n_out is None else int(n_out)
    d = torch.as_tensor(delay_samples, device=delta.device).round().long().reshape(-1, 1)
    batch = max(delta.shape[0], d.shape[0])
    idx = torch.arange(n_out, device=delta.device).unsqueeze(0) - d
    src = delta.expand(batch, length)
    if loop:
        return src.gather(1, torch.remainder(idx, length).expand(batch, n_out))
    valid = (idx >= 0) & (idx < length)
    out = src.gather(1, idx.clamp(0, length - 1).expand(batch, n_out))
    return out * valid.to(out.dtype)


def ms_to_samples(delay_ms: float, sample_rate: int) -> int:
    """Milliseconds to whole samples (rounded)."""
    return int(round(float(delay_ms) * sample_rate / 1000.0))
