"""EOT-PGD: PGD whose every gradient is an expectation over the defence's randomness."""

from __future__ import annotations

from testbed.attacks.base import DEFAULT_EOT_SAMPLES
from testbed.attacks.bounds import Annotated, Range
from testbed.attacks.pgd import PGD


class EOTPGD(PGD):
    """Adaptive PGD against stochastic defences (Athalye et al., expectation over transformation).

    Each step averages ``eot_samples`` gradients, each through a fresh draw of the model's
    randomness (e.g. which low-rank ensemble member answers), and passes gradients straight
    through quantisers (BPDA), so a defence is not credited for gradient masking. With
    ``eot_samples=1`` it is exactly :class:`~testbed.attacks.pgd.PGD`.

    Example
    -------
    >>> atk = EOTPGD(robust_model, eps=0.005, steps=20, eot_samples=16)
    """

    name = "eot-pgd"

    def __init__(self, model, eps: float, *,
                 eot_samples: Annotated[int, Range(1, 10_000, integer=True)] = DEFAULT_EOT_SAMPLES,
                 **params) -> None:
        super().__init__(model, eps, eot_samples=eot_samples, **params)
