"""Robust models: the stochastic low-rank ensemble (the paper's defence) and three baselines.

- :class:`SLREnsemble` (:func:`make_slr`): noise on every layer's singular values, ``n``
  members in one batched pass, trained with :func:`slr_loss` (CE + consistency + adversarial KL).
- baselines: defensive distillation, adversarial training, random self-ensemble
  (:class:`RSEEnsemble`, :func:`make_rse`).
- zoo variants ``slr4, slr8, distill, advtrain, rse`` (:data:`ROBUST_VARIANTS`), trained by
  :func:`train_robust` and written by ``testbed models build --variants ...``.
- :func:`ensemble_curve`: error rate against ensemble size (paper Fig. 8), CSV + PNG.

Stochastic models have ``stochastic = True``, a settable ``n_members`` and :meth:`reseed`.
"""

from testbed.models.robust.build import build_robust_variant, restructure_robust, train_robust
from testbed.models.robust.curve import CURVE_COLUMNS, ensemble_curve, plot_ensemble_curve
from testbed.models.robust.ensemble import StochasticEnsemble, ensemble_log_probs
from testbed.models.robust.losses import (
    AdversarialExamples,
    adversarial_training_loss,
    consistency_loss,
    distillation_loss,
    kl_divergence,
    noisy_ce_loss,
    slr_loss,
)
from testbed.models.robust.rse import NoiseLayer, RSEEnsemble, make_rse
from testbed.models.robust.slr import (
    SLREnsemble,
    StochasticLowRankConv,
    StochasticLowRankLinear,
    make_slr,
    make_stochastic,
)
from testbed.models.robust.variants import ROBUST_STEPS, ROBUST_VARIANTS, RobustConfig, is_robust, robust_kind

__all__ = [
    "CURVE_COLUMNS", "ROBUST_STEPS", "ROBUST_VARIANTS",
    "AdversarialExamples", "NoiseLayer", "RSEEnsemble", "RobustConfig", "SLREnsemble",
    "StochasticEnsemble", "StochasticLowRankConv", "StochasticLowRankLinear",
    "adversarial_training_loss", "build_robust_variant", "consistency_loss", "distillation_loss",
    "ensemble_curve", "ensemble_log_probs", "is_robust", "kl_divergence", "make_rse", "make_slr",
    "make_stochastic", "noisy_ce_loss", "plot_ensemble_curve", "restructure_robust", "robust_kind",
    "slr_loss", "train_robust",
]
