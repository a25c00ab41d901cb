"""Models: the paper's architectures, training, low-rank and fixed-point compression, the zoo.

Every model takes raw PCM ``(batch, samples)`` in [-1, 1] and returns logits, and carries
``labels``, ``sample_rate`` and ``stochastic``.
"""

from testbed.models.archs import ARCHS, PAPER_TABLE, ConvBlock, KwsModel, build_model, layer_counts, param_count
from testbed.models.build import build_zoo
from testbed.models.evaluation import evaluate_on, held_out_clips
from testbed.models.frontend import LogMel
from testbed.models.lowrank import (
    LowRankConv,
    LowRankLinear,
    RankInfo,
    factorize,
    lowrank_layers,
    reconstruction_error,
    svd_factors,
)
from testbed.models.predict import evaluate, predict, save_confusion_png
from testbed.models.quantize import QuantConv, QuantLinear, fake_quant, quant_layers, quantize_model, set_ste
from testbed.models.train import cross_entropy_loss, train, waveform_augment
from testbed.models.variants import VARIANTS, compress, restructure
from testbed.models.zoo import Zoo, load_model, sha256_file, split_view

__all__ = [
    "ARCHS", "PAPER_TABLE", "VARIANTS",
    "ConvBlock", "KwsModel", "LogMel", "LowRankConv", "LowRankLinear", "QuantConv", "QuantLinear",
    "RankInfo", "Zoo",
    "build_model", "build_zoo", "compress", "cross_entropy_loss", "evaluate", "evaluate_on", "factorize", "held_out_clips",
    "fake_quant", "layer_counts", "load_model", "lowrank_layers", "param_count", "predict",
    "quant_layers", "quantize_model", "reconstruction_error", "restructure", "save_confusion_png",
    "set_ste", "sha256_file", "split_view", "svd_factors", "train", "waveform_augment",
]
