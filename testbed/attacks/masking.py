"""The perceptual bound ``bound = "masking"``: a two-stage attack after Qin et al. 2019.

Stage 1 is the wrapped attack (PGD, EOT-PGD, OTA-PGD, ...) under its L-infinity ``eps``.
Stage 2 starts from that perturbation and minimises

    adv(delta) + alpha_b * mean_{frames, bins} relu(PSD_delta - (T - masking_margin_db))

per example ``b``, where ``T`` is the psychoacoustic masking threshold
(:mod:`testbed.acoustics.psychoacoustic`) of the command *as heard at the DUT mic* (digital
attacks: the clean clip; over the air: the clip through the user -> DUT mic channel, one seeded
draw), ``PSD_delta`` the perturbation's PSD at the mic on the same scale, and ``adv`` a hinge
on the logit margin that is zero once the model is fooled (untargeted) or says the target
(targeted). Digitally, every step is followed by :func:`shrink_to_threshold` (each STFT bin
above the threshold scaled down to it), which Adam alone reaches only after thousands of steps;
over the air the channel sits between ``delta`` and the mic, so only the loss acts. Qin's
schedule moves ``alpha_b``: times 1.2 every 20 steps while the example is
fooled, times 0.8 every 50 steps while it is not. The perturbation kept per example is the
fooling one with the fewest frames above the threshold, then the least excess power (stage
1's when stage 2 never fools).

The registry builds this wrapper when an attack is given ``bound = "masking"``
(:data:`MASKING_PARAMS`); :attr:`MaskedAttack.report` holds, per example, the fraction and mask
of frames whose perturbation PSD is above the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from testbed.acoustics.audibility import default_masking_model
from testbed.acoustics.psychoacoustic import PSD_FLOOR, PSD_GAIN, REFERENCE_DB, MaskingModel, masking_threshold
from testbed.attacks.base import Attack, _positive_int, logit_margin
from testbed.errors import AttackError

#: Values of the ``bound`` parameter: the L-infinity ball alone, or the ball then the masking threshold.
BOUNDS: tuple[str, ...] = ("linf", "masking")
#: Kinds the registry may wrap (those present in ``ATTACKS``): gradient attacks with a step loop.
MASKABLE_KINDS: tuple[str, ...] = ("pgd", "eot-pgd", "ota-pgd", "apgd", "ota-apgd")
#: The parameters the wrapper takes (``bound`` included), with their defaults.
MASKING_PARAMS: dict[str, object] = {
    "bound": "linf", "masking_steps": 100, "masking_lr": None, "masking_alpha": 0.05,
    "masking_margin_db": 0.5, "masking_kappa": 0.0, "masking_window": None, "masking_hop": None,
    "masking_sample_rate": None,
}


def frames_torch(x: torch.Tensor, model: MaskingModel) -> torch.Tensor:
    """Hann-windowed frames (B, n_frames, window) of (B, S), framed as :meth:`MaskingModel.frames`."""
    from testbed.acoustics.psychoacoustic import pad_for_frames

    pad = pad_for_frames(x.shape[-1], model.window, model.hop)
    x = torch.nn.functional.pad(x, (0, pad))
    win = torch.hann_window(model.window, periodic=True, dtype=x.dtype, device=x.device)
    return x.unfold(-1, model.window, model.hop) * win


def psd_db_torch(delta: torch.Tensor, psd_max_db: torch.Tensor, model: MaskingModel) -> torch.Tensor:
    """PSD (B, n_frames, n_bins) of ``delta`` (B, S) in dB SPL on each clip's scale.

    ``psd_max_db`` (B,) is the clip's un-normalised peak (:attr:`MaskingThreshold.psd_max_db`).
    """
    spec = torch.fft.rfft(frames_torch(delta, model), dim=-1)
    power = (PSD_GAIN / model.window) ** 2 * (spec.real ** 2 + spec.imag ** 2)
    return REFERENCE_DB - psd_max_db[:, None, None] + 10.0 * torch.log10(power + PSD_FLOOR)


def shrink_to_threshold(delta: torch.Tensor, thr_db: torch.Tensor, psd_max_db: torch.Tensor,
                        model: MaskingModel, margin_db: float = 0.0) -> torch.Tensor:
    """Scale every STFT bin of ``delta`` (B, S) that is above ``thr_db - margin_db`` down to it and
    resynthesise (weighted overlap-add with the Hann window again): an approximate projection on
    the masked set.

    Overlapping frames leak into each other, so one pass leaves small excesses; stage 2 repeats it.
    The sum of squared windows is divided out where all frames overlap; the clip's first and
    last samples, under fewer frames, are tapered rather than divided by a weight near 0 (which
    amplified them up to ~1000-fold before: clicks the eps projection then clipped to +-eps).
    """
    n = delta.shape[-1]
    frames = frames_torch(delta, model)
    spec = torch.fft.rfft(frames, dim=-1)
    power = (PSD_GAIN / model.window) ** 2 * (spec.real ** 2 + spec.imag ** 2)
    psd = REFERENCE_DB - psd_max_db[:, None, None] + 10.0 * torch.log10(power + PSD_FLOOR)
    excess = torch.relu(psd - (thr_db - margin_db))
    win = torch.hann_window(model.window, periodic=True, dtype=delta.dtype, device=delta.device)
    frames = torch.fft.irfft(spec * 10.0 ** (-excess / 20.0), n=model.window, dim=-1) * win
    t = frames.shape[-2]
    length = model.window + (t - 1) * model.hop
    idx = (torch.arange(t, device=delta.device)[:, None] * model.hop
           + torch.arange(model.window, device=delta.device)[None, :]).reshape(-1)
    out = torch.zeros(delta.shape[:-1] + (length,), dtype=delta.dtype, device=delta.device)
    out.index_add_(-1, idx, frames.reshape(delta.shape[:-1] + (-1,)))
    norm = torch.zeros(length, dtype=delta.dtype, device=delta.device)
    norm.index_add_(0, idx, (win * win).expand(t, -1).reshape(-1))
    return (out / norm.max().clamp_min(1e-12))[..., :n]


class MaskedAttack(Attack):
    """An attack followed by Qin et al.'s stage 2 under the psychoacoustic masking threshold.

    Parameters
    ----------
    base : Attack
        Stage 1 (its ``eps``, ``model_input``, ``project`` and ``objective`` are used throughout).
    masking_steps : int
        Stage-2 iterations (Adam on ``delta``, projected on the base attack's eps ball).
    masking_lr : float or None
        Initial Adam step, PCM scale (default ``eps / 20``), decayed 100-fold over stage 2.
    masking_alpha : float
        Initial weight of the masking loss (Qin et al.: 0.05), adapted per example.
    masking_margin_db : float
        Stage 2 aims this far under the threshold, dB (the report counts from the threshold itself).
    masking_kappa : float
        Logit-margin the adversarial hinge asks for (0: just fooled).
    masking_window, masking_hop : int or None
        STFT layout of the threshold, samples (default: 128 ms windows, hop a quarter).
    masking_sample_rate : int or None
        Hz; default the model's ``sample_rate`` attribute, else 16000.

    Attributes
    ----------
    report : dict
        After :meth:`perturb`: ``frames_above`` float (B,) fraction of frames above the threshold,
        ``above`` bool (B, n_frames), ``margin_db`` float (B,) max PSD excess over the threshold,
        ``fooled`` bool (B,) whether the kept perturbation fooled the model in stage 2 (or 1),
        ``stage1_frames_above`` float (B,).
    """

    def __init__(self, base: Attack, *, masking_steps: int = 100, masking_lr: float | None = None,
                 masking_alpha: float = 0.05, masking_margin_db: float = 0.5, masking_kappa: float = 0.0,
                 masking_window: int | None = None, masking_hop: int | None = None,
                 masking_sample_rate: int | None = None) -> None:
        super().__init__(base.model, base.eps, seed=base.seed, eot_samples=base.eot_samples,
                         bpda=base.bpda, loss=base.loss)
        self.base = base
        self.name = base.name
        self.bound = "masking"
        self.masking_steps = _positive_int(self.name, "masking_steps", masking_steps)
        self.masking_lr = float(masking_lr) if masking_lr is not None else self.eps / 20.0
        self.masking_alpha = float(masking_alpha)
        self.masking_margin_db = float(masking_margin_db)
        self.masking_kappa = float(masking_kappa)
        for k in ("masking_lr", "masking_alpha", "masking_margin_db", "masking_kappa"):
            v = getattr(self, k)
            if not math.isfinite(v) or v < 0 or (k in ("masking_lr", "masking_alpha") and v == 0):
                raise AttackError(f"{self.name}: {k} must be a finite number > 0 (>= 0 for margins), got {v}")
        rate = int(masking_sample_rate or getattr(base.model, "sample_rate", 0) or 16000)
        model = default_masking_model(rate)
        window = _positive_int(self.name, "masking_window", masking_window) if masking_window else model.window
        hop = _positive_int(self.name, "masking_hop", masking_hop) if masking_hop else window // 4
        try:
            self.masking_model = MaskingModel(rate, window, hop)
        except ValueError as exc:
            raise AttackError(f"{self.name}: {exc}") from None
        self.masking_window, self.masking_hop, self.masking_sample_rate = window, hop, rate
        self.supported_modes = base.supported_modes
        self.report: dict = {}

    # the base attack's forward model and ball, so both stages optimise the same thing
    def model_input(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.base.model_input(x, delta)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.base.project(x, delta)

    def hyper(self) -> dict:
        return self.base.hyper() | {k: v for k, v in super().hyper().items() if k.startswith("masking")
                                    or k == "bound"}

    # -- the two stages --------------------------------------------------------------
    def command_at_mic(self, x: torch.Tensor) -> torch.Tensor:
        """The command as the DUT mic hears it (B, S): ``x`` digitally; through one seeded draw
        of the user -> mic channel (with its noise) over the air."""
        channel = getattr(self.base, "channel", None)
        if channel is None:
            return x
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        silent = torch.zeros((x.shape[0], 1), device=x.device, dtype=x.dtype)
        return channel.mix(x, silent, g, channel=torch.zeros(1), delay_samples=torch.zeros(1))

    def delta_at_mic(self, x: torch.Tensor, delta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The perturbation as the DUT mic hears it (B, S): digitally ``clip(x + delta) - x``;
        over the air the adversary path alone (a random draw from ``generator``, no noise)."""
        channel = getattr(self.base, "channel", None)
        if channel is None:
            return self.base.project(x, delta)
        return channel.mix(torch.zeros_like(x), delta, generator, noise=False)

    def _thresholds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heard = self.command_at_mic(x).detach().cpu().numpy().astype(np.float64)
        thr, peak = [], []
        for row in heard:
            m = masking_threshold(row, self.masking_model)
            thr.append(m.threshold_db)
            peak.append(m.psd_max_db)
        return (torch.as_tensor(np.stack(thr), dtype=torch.float32, device=x.device),
                torch.as_tensor(peak, dtype=torch.float32, device=x.device))

    def _excess(self, heard: torch.Tensor, thr: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """PSD minus threshold (B, n_frames, n_bins), dB."""
        return psd_db_torch(heard, peak, self.masking_model) - thr

    def _fooled(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Margin (B,) that is > 0 when the model is fooled (untargeted) or says the target."""
        return logit_margin(logits, y) if target is None else -logit_margin(logits, target)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        before = self.base.queries
        delta = self.base._perturb(x, y, target).detach()
        self.queries += self.base.queries - before
        thr, peak = self._thresholds(x)
        b = x.shape[0]
        alpha = torch.full((b,), self.masking_alpha, device=x.device)
        eval_gen = torch.Generator(device=x.device).manual_seed(self.seed + 1)

        def measure(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """(frames above (B, frames), max excess dB (B,), mean hinge dB (B,)) at fixed draws."""
            g = torch.Generator(device=x.device).manual_seed(self.seed + 2)
            ex = self._excess(self.delta_at_mic(x, d, g), thr, peak)
            per_frame = ex.amax(dim=-1)
            return per_frame > 0, per_frame.amax(dim=-1), torch.relu(ex).mean(dim=(1, 2))

        above0 = measure(delta)[0]
        best = delta.clone()
        best_frac = torch.full((b,), math.inf, device=x.device)
        best_hinge = torch.full((b,), math.inf, device=x.device)
        fooled_any = torch.zeros(b, dtype=torch.bool, device=x.device)
        delta = delta.clone().requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=self.masking_lr)
        # Adam moves each sample by about lr per step: decay it 100-fold over stage 2 so the
        # perturbation can settle tens of dB under its stage-1 level
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1.0 / self.masking_steps))
        # step 0 judges stage 1's perturbation; the last pass only judges the last step's
        for step in range(self.masking_steps + 1):
            adv, margins = 0.0, []
            for _ in range(self.eot_samples):
                margin = self._fooled(self.model(self.model_input(x, delta)), y, target)
                margins.append(margin.detach())
                adv = adv + torch.relu(self.masking_kappa - margin) / self.eot_samples
            self.queries += b * self.eot_samples
            with torch.no_grad():
                fooled = torch.stack(margins).mean(0) > 0
                above, _, hinge = measure(delta)
                frac = above.float().mean(-1)
                # fewer frames above the threshold first, then less excess power
                better = fooled & ((frac < best_frac) | ((frac == best_frac) & (hinge < best_hinge)))
                best[better] = delta.detach()[better]
                best_frac[better] = frac[better]
                best_hinge[better] = hinge[better]
                fooled_any |= fooled
            if step == self.masking_steps:
                break
            excess = self._excess(self.delta_at_mic(x, delta, eval_gen), thr, peak)
            mask_loss = torch.relu(excess + self.masking_margin_db).mean(dim=(1, 2))
            opt.zero_grad()
            (adv + alpha * mask_loss).sum().backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                if getattr(self.base, "channel", None) is None:
                    # digital: what is added is what is heard, so project on the masked set too
                    delta.copy_(shrink_to_threshold(delta, thr, peak, self.masking_model, self.masking_margin_db))
                delta.copy_(self.project(x, delta))
            if (step + 1) % 20 == 0:
                alpha = torch.where(fooled, alpha * 1.2, alpha)
            if (step + 1) % 50 == 0:
                alpha = torch.where(fooled, alpha, alpha * 0.8)
        above, margin_db, _ = measure(best)
        self.report = {
            "frames_above": above.float().mean(-1).cpu().numpy(),
            "above": above.cpu().numpy(),
            "margin_db": margin_db.cpu().numpy(),
            "fooled": fooled_any.cpu().numpy(),
            "stage1_frames_above": above0.float().mean(-1).cpu().numpy(),
        }
        return best.detach()


def split_masking_params(params: dict) -> tuple[dict, dict | None]:
    """``(attack params, masking params or None)`` from one parameter dict; None for ``bound = "linf"``.

    Raises AttackError for an unknown bound or masking parameters without ``bound = "masking"``.
    """
    params = dict(params)
    bound = params.pop("bound", "linf")
    if bound not in BOUNDS:
        raise AttackError(f"bound must be one of {', '.join(BOUNDS)}, got {bound!r}")
    masking = {k: params.pop(k) for k in list(params) if k in MASKING_PARAMS and k != "bound"}
    if bound == "linf":
        if masking:
            raise AttackError(f"{next(iter(masking))}: only with bound = \"masking\"")
        return params, None
    return params, masking
