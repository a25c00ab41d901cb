"""Delay-free universal perturbations over the air, and their success at every phase of the loop.

:class:`OTAUniversal` is :class:`~testbed.attacks.universal.Universal` with ``over_the_air`` on by
default: one signal, looped by the adversary speaker, trained with EOT over utterances (a random
minibatch each step), delays (a phase drawn uniformly over the loop), channels (a
:class:`~testbed.attacks.channels.ChannelBank` draw), path gains and noise. A plan's
``kind = "universal"`` with ``over_the_air = true`` uses it.

:func:`delay_sweep` reports what the issue asks of it: the error (or targeted success) with the
command starting at each delay in 0-1000 ms after the loop's start.
"""

from __future__ import annotations

import torch

from testbed.attacks.channels import OverTheAir
from testbed.attacks.universal import Universal


class OTAUniversal(Universal):
    """A looped universal perturbation trained through the rig's channels.

    Parameters are those of :class:`~testbed.attacks.universal.Universal` (``rig`` or ``channel``
    required); ``over_the_air`` defaults to True and ``loop`` to True.

    Example
    -------
    >>> atk = OTAUniversal(model, eps=0.01, rig=rig, length_samples=16000, steps=200)
    >>> loop = atk.perturb(x_train, y_train)[0]      # play it in a loop, from any moment
    """

    name = "ota-universal"

    def __init__(self, model, eps: float, *, over_the_air: bool = True, **params) -> None:
        super().__init__(model, eps, over_the_air=over_the_air, **params)


def loop_delays_ms(length_samples: int, sample_rate: int, n: int) -> list[float]:
    """``n`` delays spread evenly over one period of a loop of ``length_samples``, ms, from 0."""
    period_ms = 1000.0 * length_samples / sample_rate
    return [period_ms * k / n for k in range(n)]


@torch.no_grad()
def delay_sweep(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                delays_ms, *, sample_rate: int, channel: OverTheAir | None = None,
                target: torch.Tensor | None = None, draws: int = 1, seed: int = 0) -> dict[float, float]:
    """Error rate (untargeted) or target rate (targeted) of a looped ``delta`` at each delay.

    Parameters
    ----------
    x : float tensor (B, S) commands; y : int64 (B,) labels.
    delta : float tensor (L,) or (1, L), the loop.
    delays_ms : delays of the loop's start before the command's, ms (e.g. 0-1000).
    channel : the over-the-air mix (None: digital ``x + loop``).
    target : int64 (B,) target labels, or None for untargeted.
    draws : channel draws per delay (averaged).

    Returns
    -------
    {delay_ms: rate in [0, 1]}
    """
    from testbed.attacks.timing import shift_perturbation

    delta = delta.reshape(1, -1).to(x.device, x.dtype)
    g = torch.Generator(device=x.device).manual_seed(int(seed))
    out = {}
    for d_ms in delays_ms:
        d = torch.full((x.shape[0],), round(float(d_ms) * sample_rate / 1000.0), device=x.device)
        hits = []
        for _ in range(int(draws)):
            if channel is None:
                mic = (x + shift_perturbation(delta, d, n_out=x.shape[-1], loop=True)).clamp(-1.0, 1.0)
            else:
                mic = channel.mix(x, delta, g, loop=True, delay_samples=d.to(x.dtype))
            pred = model(mic).argmax(-1)
            hits.append((pred != y) if target is None else (pred == target))
        out[float(d_ms)] = float(torch.stack(hits).float().mean())
    return out

