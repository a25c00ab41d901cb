"""The over-the-air forward model attacks optimise through: channels, delay, noise, gain.

What the DUT's mic hears for a command ``x`` played on the user speaker and a perturbation
``delta`` played on the adversary speaker ``delay`` samples later::

    mic = clip(g * (g_u * h_user * x + g_a * h_adv * delay(delta) + noise), -1, 1)

with ``h_user``, ``h_adv`` impulse responses drawn from the rig (``sample_channel``, levels
included), and every factor drawn at random per example so that a gradient averaged over
draws is an expectation over transformations (EOT). Convolutions and the fractional part of
the delay are done by FFT (``torch.fft``), so the whole model is differentiable in ``delta``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.fft import next_fast_len

from testbed.attacks.timing import shift_perturbation
from testbed.errors import AttackError


@dataclass
class ChannelBank:
    """A fixed set of channel draws (user and adversary paths to a mic) to sample from.

    Drawing room impulse responses is slow, so a bank is drawn once (with position jitter)
    and every EOT step picks among its members.

    Attributes
    ----------
    h_user, h_adv : list of float32 arrays (K_i,)
        Impulse responses from the digital signal sent to the user / adversary speaker to
        the digital signal at the mic's ADC, levels included.
    noise_rms : float64 array (C,)
        Background plus mic self-noise per draw, digital full-scale units.
    mics : list of str
        The mic each draw is for.
    """

    h_user: list[np.ndarray]
    h_adv: list[np.ndarray]
    noise_rms: np.ndarray
    mics: list[str] = field(default_factory=list)
    #: Where the draws come from, for trial notes: "shoebox", "measured IRs (DIR)", ...
    source: str = ""
    #: r1-follow: noise recorded in the room (``[room] noise``): float32 (n,) at RMS 1, and per
    #: draw the RMS it is mixed at (the diffuse part of ``noise_rms``; the rest stays white)
    noise_bed: np.ndarray | None = None
    bed_rms: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.h_user or len(self.h_user) != len(self.h_adv):
            raise AttackError("channel bank: need as many adversary as user channels, at least one")
        self.noise_rms = np.asarray(self.noise_rms, dtype=np.float64).reshape(-1)
        if self.noise_rms.shape[0] != len(self.h_user):
            raise AttackError("channel bank: one noise_rms per channel is required")

    def __len__(self) -> int:
        return len(self.h_user)

    @classmethod
    def from_channels(cls, channels: Sequence, user: str = "user", adversary: str = "adversary",
                      mics: Sequence[str] | None = None) -> "ChannelBank":
        """A bank from ``Channel`` objects (``.h[speaker]`` arrays and ``.noise_rms``)."""
        try:
            h_user = [np.asarray(c.h[user], dtype=np.float32) for c in channels]
            h_adv = [np.asarray(c.h[adversary], dtype=np.float32) for c in channels]
        except KeyError as exc:
            raise AttackError(f"channel bank: a channel has no impulse response for speaker {exc}") from None
        return cls(h_user, h_adv, np.array([float(c.noise_rms) for c in channels]),
                   list(mics) if mics is not None else [])

    @classmethod
    def from_rig(cls, rig, *, mics: Sequence[str] | None = None, placement: str | None = None,
                 n_channels: int = 8, position_jitter_m: float = 0.1, seed: int = 0) -> "ChannelBank":
        """Draw ``n_channels`` channels from the rig's simulated acoustics.

        For a measured-room rig (``[room] model = "measured"``) the draws are the measured
        paths varied by :func:`testbed.acoustics.measured_eot.measured_draws` (any
        ``position_jitter_m > 0`` turns the variations on; 0 gives the nominal paths).

        Parameters
        ----------
        rig : testbed.rig.Rig
        mics : mic names to draw for, in turn (default: the DUT mic); several mics make
            the perturbation robust across mic tiers.
        placement : a named placement of the rig, or None.
        n_channels : int
        position_jitter_m : float
            Standard deviation of the random displacement of speakers and mics, metres.
        seed : int

        A physical rig crafts through its calibration's measured twin when the caller passes
        that twin (:func:`testbed.session.craft_rig.crafting_channels`, which the session and
        ``attack eval`` use); ``bank.source`` says which paths were drawn.
        """
        from testbed.acoustics import sample_channel

        mics = list(mics) if mics else [rig.dut.mic]
        unknown = [m for m in mics if m not in rig.mics]
        if unknown:
            raise AttackError(f"rig {rig.name}: no mic {unknown[0]!r} (have: {', '.join(rig.mics)})")
        if placement is not None and placement not in rig.placements:
            raise AttackError(f"rig {rig.name}: no placement {placement!r} "
                              f"(have: {', '.join(rig.placements) or 'none'})")
        adversary = rig.adversary_speaker
        if adversary is None:
            raise AttackError(f"rig {rig.name}: no speaker with role 'adversary' to play the perturbation")
        rng = np.random.default_rng(seed)
        source = "shoebox"
        if rig.room.model == "measured":
            source = f"measured IRs ({rig.room.irs})"
            # measured paths cannot move: vary the recorded responses instead (shift, gain,
            # tilt, late-reverb swaps between paths); no jitter asks for the nominal paths
            from testbed.acoustics.measured_eot import MeasuredEot, measured_draws, noise_bed

            eot = MeasuredEot() if position_jitter_m > 0 else None
            drawn = measured_draws(rig, mics, placement, int(n_channels), rng, eot)
            names = [mics[i % len(mics)] for i in range(int(n_channels))]
            bank = cls.from_channels(drawn, rig.user_speaker, adversary, names)
            bank.source = source
            bed = noise_bed(rig, names)  # r1-follow: the room's recorded background, if the rig has one
            if bed is not None:
                bank.noise_bed, bank.bed_rms = bed
                bank.source += f" + recorded noise ({rig.room.noise})"
            return bank
        drawn, names = [], []
        for i in range(int(n_channels)):
            mic = mics[i % len(mics)]
            drawn.append(sample_channel(rig, mic, placement, rng=rng, position_jitter_m=position_jitter_m))
            names.append(mic)
        bank = cls.from_channels(drawn, rig.user_speaker, adversary, names)
        bank.source = source
        return bank

    def spectra(self, n_fft: int, n_taps: int, device: torch.device):
        """(H_user (C, F), H_adv (C, F), noise_rms (C,)) as torch tensors, cached.

        Impulse responses are cut to ``n_taps`` (taps beyond the model's window cannot
        reach it) and transformed with an ``n_fft``-point real FFT.
        """
        key = (n_fft, n_taps, str(device))
        if key not in self._cache:
            def stack(hs):
                out = np.zeros((len(hs), n_taps), dtype=np.float32)
                for i, h in enumerate(hs):
                    k = min(n_taps, h.shape[-1])
                    out[i, :k] = h[:k]
                return torch.fft.rfft(torch.from_numpy(out).to(device), n=n_fft)
            self._cache[key] = (stack(self.h_user), stack(self.h_adv),
                                torch.as_tensor(self.noise_rms, dtype=torch.float32, device=device))
        return self._cache[key]


@dataclass
class OverTheAir:
    """Random over-the-air transformation: channel, sync delay, path gains, noise, mic gain.

    Parameters
    ----------
    bank : ChannelBank
    sample_rate : int
    delay_ms : (min, max)
        Sync delay window (adversary start minus user start), drawn uniformly, ms.
    gain_db : (min, max)
        Independent random gain of each speaker path (playback level uncertainty), dB.
    noise_db : (min, max)
        Random scale of the bank's noise level, dB.
    input_gain_db : float
        Fixed digital gain the DUT applies to its mic signal, dB.
    """

    bank: ChannelBank
    sample_rate: int = 16000
    delay_ms: tuple[float, float] = (0.0, 500.0)
    gain_db: tuple[float, float] = (-2.0, 2.0)
    noise_db: tuple[float, float] = (-3.0, 3.0)
    input_gain_db: float = 0.0

    def __post_init__(self) -> None:
        for name in ("delay_ms", "gain_db", "noise_db"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
                raise AttackError(f"over-the-air: {name} must be (min, max) with min <= max, got {(lo, hi)}")
            setattr(self, name, (lo, hi))

    def mix(self, x: torch.Tensor, delta: torch.Tensor, generator: torch.Generator, *,
            loop: bool = False, delay_samples: torch.Tensor | None = None,
            channel: torch.Tensor | None = None, noise: bool = True) -> torch.Tensor:
        """The DUT mic signal, one random draw per example.

        Parameters
        ----------
        x : float tensor (B, S)
            The command as sent to the user speaker.
        delta : float tensor (B, L) or (1, L)
            The perturbation as sent to the adversary speaker.
        generator : torch.Generator for every random draw.
        loop : bool
            The adversary plays ``delta`` in a loop (universal mode); the delay is then a
            phase in ``[0, L)`` samples instead of a draw from ``delay_ms``.
        delay_samples, channel : tensors (B,) or None
            Fix the delay (samples, may be fractional) or the bank index instead of drawing.
        noise : bool
            Add the background noise.

        Returns
        -------
        float tensor (B, S), clipped to [-1, 1]
        """
        b, s = x.shape
        dev, dt = x.device, x.dtype
        n_fft = next_fast_len(2 * s + 64, real=True)
        h_u, h_a, noise_rms = self.bank.spectra(n_fft, s, dev)

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(b, generator=generator, device=dev, dtype=dt)

        c = (torch.randint(len(self.bank), (b,), generator=generator, device=dev)
             if channel is None else torch.as_tensor(channel, device=dev).long().reshape(-1).expand(b))
        if delay_samples is not None:
            d = torch.as_tensor(delay_samples, device=dev, dtype=dt).reshape(-1).expand(b)
        elif loop:
            d = torch.randint(delta.shape[-1], (b,), generator=generator, device=dev).to(dt)
        else:
            d = uniform(*self.delay_ms) * (self.sample_rate / 1000.0)
        g_u = 10.0 ** (uniform(*self.gain_db) / 20.0)
        g_a = 10.0 ** (uniform(*self.gain_db) / 20.0)
        whole = torch.floor(d)
        frac = d - whole
        placed = shift_perturbation(delta, whole, n_out=s, loop=loop)
        k = torch.arange(n_fft // 2 + 1, device=dev, dtype=dt)
        phase = torch.polar(torch.ones_like(frac)[:, None].expand(b, k.shape[0]),
                            -2.0 * math.pi * frac[:, None] * k[None, :] / n_fft)
        spec = (g_u[:, None] * h_u[c] * torch.fft.rfft(x, n=n_fft)
                + g_a[:, None] * h_a[c] * phase * torch.fft.rfft(placed, n=n_fft))
        mic = torch.fft.irfft(spec, n=n_fft)[:, :s]
        if noise:
            scale = 10.0 ** (uniform(*self.noise_db) / 20.0)
            white = torch.randn((b, s), generator=generator, device=dev, dtype=dt)
            if self.bank.noise_bed is None:
                mic = mic + (noise_rms[c] * scale)[:, None] * white
            else:  # r1-follow: the room's recording at its level, the rest of noise_rms white
                bed = torch.as_tensor(self.bank.noise_bed, device=dev, dtype=dt)
                start = torch.randint(bed.shape[0], (b,), generator=generator, device=dev)
                rec = bed[(start[:, None] + torch.arange(s, device=dev)[None, :]) % bed.shape[0]]
                b_rms = torch.as_tensor(self.bank.bed_rms, device=dev, dtype=dt)[c]
                w_rms = torch.sqrt(torch.clamp(noise_rms[c].to(dt) ** 2 - b_rms ** 2, min=0.0))
                mic = mic + scale[:, None] * (b_rms[:, None] * rec + w_rms[:, None] * white)
        if self.input_gain_db:
            mic = mic * (10.0 ** (self.input_gain_db / 20.0))
        return mic.clamp(-1.0, 1.0)
