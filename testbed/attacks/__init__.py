"""Adversarial attacks on raw-PCM audio models: digital, black-box, adaptive and over-the-air.

``make_attack(kind, model, eps, **params)`` builds one from the registry ``ATTACKS``;
``attack.perturb(x, y, target=None)`` returns the perturbation and ``attack(x, y)`` the
digital adversarial example. See DESIGN.md and the issue [T3].
"""

from testbed.attacks.apgd import APGD, APGDCE, APGDDLR, checkpoints
from testbed.attacks.base import (
    DEFAULT_EOT_SAMPLES,
    LOSSES,
    Attack,
    apply_perturbation,
    dlr_loss,
    fit_length,
    label_index,
    logit_margin,
    targeted_dlr_loss,
)
from testbed.attacks.auto import AutoAttack
from testbed.attacks.best import Best
from testbed.attacks.channels import ChannelBank, OverTheAir
from testbed.attacks.eot_pgd import EOTPGD
from testbed.attacks.evaluate import COLUMNS, craft, evaluate_attack, predictions, snr_db, transfer_matrix
from testbed.attacks.fgsm import FGSM
from testbed.attacks.nes import NES
from testbed.attacks.oracles import ModelOracle, QueryOracle  # r6-blackbox
from testbed.attacks.ota_blackbox import OTANES  # r6-blackbox
from testbed.attacks.ota_pgd import OTAPGD
from testbed.attacks.pgd import PGD
from testbed.attacks.registry import ATTACKS, attack_params, make_attack
from testbed.attacks.square import Square
from testbed.attacks.ste import GRADIENTS, bpda, gradient_mode, straight_through
from testbed.attacks.timing import ms_to_samples, shift_perturbation
from testbed.attacks.streaming import StreamingPredictor, train_streaming  # r6-blackbox
from testbed.attacks.universal import Universal
from testbed.attacks.universal_loop import OTAUniversal, delay_sweep, loop_delays_ms  # r6-blackbox

__all__ = [
    "APGD", "APGDCE", "APGDDLR", "AutoAttack", "Best", "Square", "checkpoints", "dlr_loss", "targeted_dlr_loss",
    "ATTACKS", "COLUMNS", "DEFAULT_EOT_SAMPLES", "EOTPGD", "FGSM", "LOSSES", "NES", "OTANES", "OTAPGD", "PGD",
    "ModelOracle", "OTAUniversal", "QueryOracle", "StreamingPredictor", "delay_sweep", "loop_delays_ms",
    "train_streaming",
    "Attack", "ChannelBank", "OverTheAir", "Universal",
    "apply_perturbation", "attack_params", "craft", "evaluate_attack", "fit_length",
    "label_index", "logit_margin", "make_attack", "ms_to_samples", "predictions", "shift_perturbation",
    "snr_db", "straight_through", "transfer_matrix", "GRADIENTS", "bpda", "gradient_mode",
]
