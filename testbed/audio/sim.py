"""The simulated rig: an :class:`~testbed.audio.AudioBackend` over a room acoustics model.

One trial, in order:

1. each speaker's signal passes the same safety limiter as on hardware
   (:func:`testbed.audio.limiter.limit`: the speaker's ``max_dbfs`` on the true peak,
   ``max_rms_dbfs`` and ``max_seconds_at_ceiling``);
2. it is delayed by its start offset (+ ``extra_latency_samples``) with a
   fractional-delay filter, so 196.8 samples are realised as 196.8 samples;
3. it is convolved, by FFT and batched over mics, with the cached speaker -> mic
   impulse responses of :func:`testbed.acoustics.sample_channel` (loudspeaker model,
   image-source room, mic response, calibrated levels);
4. each mic's ADC clock error (``clock_ppm``) is applied by resampling;
5. a diffuse pink background field at ``room.noise_dbspl`` and the mic's self-noise
   are added (and any sound injected with :meth:`SimBackend.inject`);
6. each mic's ADC clips at full scale and quantises to its bit depth.

Randomness (noise) comes from ``numpy.random.default_rng([seed, trial_index])``: a
fresh backend with the same seed replays the same sequence of captures, and two
trials of one backend differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import fft as sfft

from testbed.acoustics import adc, apply_clock_ppm, fractional_delay, mic_facts, sample_channel
from testbed.acoustics.channel import Channel, placement_positions
from testbed.acoustics.measured import check_measured
from testbed.acoustics.noise import noise_coloring, noise_spectrum, noise_terms, self_noise_rms
from testbed.acoustics.responses import mic_response_db
from testbed.acoustics.room import RoomSpec, default_rir_cache, source_directivities
from testbed.audio.limiter import limit_for, record_limit
from testbed.audio.types import Capture, Playback, TrialFacts, dbfs
from testbed.audio.sim_spl import Injection, SourceLevels, injected, spend
from testbed.errors import DeviceError

#: Impulse-response tails below this fraction of their energy are dropped (-70 dB).
_TAIL_ENERGY = 1e-7


def _trim(h: np.ndarray) -> np.ndarray:
    e = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    if e[0] <= 0:
        return h[:1]
    keep = int(np.searchsorted(-e, -_TAIL_ENERGY * e[0]))
    return h[:max(keep, 1)]


#: FFT sizes are multiples of this: pocketfft's radix-2/4 passes make 34560 = 2^8 3^3 5 about 20 %
#: faster than next_fast_len's 33750 = 2 3^3 5^4 for the bench trial's 33484 samples.
_FFT_MULTIPLE = 64


def _fft_size(n: int) -> int:
    """A fast real-FFT size >= ``n`` samples: the next 5-smooth multiple of :data:`_FFT_MULTIPLE`."""
    return _FFT_MULTIPLE * sfft.next_fast_len(-(-n // _FFT_MULTIPLE), real=True)


def _levels_dbfs(x: np.ndarray) -> tuple[float, float]:
    """``(dbfs(x, "peak"), dbfs(x, "rms"))`` of a float32 signal from one double-precision copy
    (the same peak; the RMS to double-precision rounding, a dot product instead of a mean)."""
    if x.size == 0:
        return dbfs(x, "peak"), dbfs(x, "rms")
    x64 = x.astype(np.float64)
    peak = max(float(x64.max()), -float(x64.min()))
    ms = float(np.dot(x64, x64)) / x64.size       # one pass, no squared temporary
    return float(20 * np.log10(max(peak, 1e-10))), float(20 * np.log10(max(np.sqrt(ms), 1e-10)))


class SimBackend:
    """The simulated rig behind the :class:`~testbed.audio.AudioBackend` interface.

    Parameters
    ----------
    rig : a validated rig (any backend; the simulator reads room, speakers and mics).
    seed : noise seed; default ``rig.room.seed``.
    extra_latency_samples : a constant delay (samples, may be fractional) added to
        every capture, as an uncompensated sound card would; calibration recovers it.
        It is reported as ``TrialFacts.latency_samples`` and is *not* part of
        ``arrival_offsets_samples`` (which are acoustic arrivals).
    """

    name = "sim"

    def __init__(self, rig, seed: int | None = None, extra_latency_samples: float = 0.0) -> None:
        if extra_latency_samples < 0:
            raise DeviceError(f"sim backend: extra_latency_samples must be >= 0, got {extra_latency_samples}")
        self.rig = rig
        self.sample_rate = int(rig.sample_rate)
        self.seed = int(rig.room.seed if seed is None else seed)
        self.extra_latency_samples = float(extra_latency_samples)
        self.trial_index = 0
        self._closed = False
        self._channels: dict[str | None, dict[str, Channel]] = {}
        self._spectra: dict[tuple, tuple[int, dict[str, np.ndarray]]] = {}
        self._trimmed: dict[str | None, dict[str, list[np.ndarray]]] = {}
        self._colorings: dict[tuple, tuple[np.ndarray, tuple]] = {}
        if rig.room.model == "measured":
            check_measured(rig)   # every IR file the rig needs, read once: RigError naming the file
        self.injections: list[Injection] = []                 # issue 23: SPL (testbed.audio.sim_spl)
        self._source_levels = SourceLevels(self.sample_rate)

    def inject(self, level_dbspl: float, n_captures: int = 1, *, kind: str = "noise",
               freq_hz: float = 1000.0, mics: tuple[str, ...] | list[str] | None = None) -> None:
        """Test hook: add white noise (``kind="noise"``, a loud room) or a ``freq_hz`` sine (``"tone"``,
        a calibrator held on ``mics``) of ``level_dbspl`` dB SPL at the mics for the next ``n_captures``."""
        self.injections.append(Injection.checked(self.rig, level_dbspl, n_captures, kind, freq_hz, mics))

    # -- channels ------------------------------------------------------------
    def channels(self, placement: str | None = None) -> dict[str, Channel]:
        """The nominal channel to every mic for ``placement`` (cached)."""
        if placement not in self._channels:
            pos = placement_positions(self.rig, placement)  # RigError for an unknown placement
            # one image-source run for every pair (the images are shared by all mics);
            # a measured room reads its IR files instead (sample_channel dispatches)
            if self.rig.room.model != "measured":
                default_rir_cache().get(RoomSpec.from_rig(self.rig), [pos[s] for s in self.rig.speakers],
                                        [pos[m] for m in self.rig.mics], source_directivities(self.rig))
            rng = np.random.default_rng(0)  # unused: no jitter
            self._channels[placement] = {
                m: sample_channel(self.rig, m, placement, rng=rng) for m in self.rig.mics
            }
        return self._channels[placement]

    def _spectrum(self, placement: str | None, n_sig: int) -> tuple[int, dict[str, np.ndarray]]:
        """FFT size and per-speaker stacked mic spectra, shape (n_mics, nfft // 2 + 1)."""
        if placement not in self._trimmed:
            chans = self.channels(placement)
            self._trimmed[placement] = {s: [_trim(chans[m].h[s]) for m in self.rig.mics]
                                        for s in self.rig.speakers}
        mics = list(self.rig.mics)
        hs = self._trimmed[placement]
        n_h = max(len(h) for row in hs.values() for h in row)
        nfft = _fft_size(n_sig + n_h - 1)
        key = (placement, nfft)
        if key not in self._spectra:
            if len(self._spectra) > 16:
                self._spectra.clear()
            spec = {}
            for s, row in hs.items():
                stack = np.zeros((len(mics), n_h), dtype=np.float64)
                for i, h in enumerate(row):
                    stack[i, :len(h)] = h
                spec[s] = sfft.rfft(stack, nfft, axis=-1).astype(np.complex64)
            self._spectra[key] = (nfft, spec)
        return self._spectra[key]

    # -- the trial -----------------------------------------------------------
    def run_trial(
        self,
        plays: Mapping[str, Playback],
        record_s: float,
        placement: str | None = None,
    ) -> Capture:
        """Play ``plays`` on the simulated speakers and record every mic for ``record_s`` s.

        Parameters
        ----------
        plays : speaker name -> :class:`Playback` (float32 signal, start offset in samples).
        record_s : capture length in seconds.
        placement : a named placement of the rig, or None.

        Returns
        -------
        Capture
            ``mics[name]``: float32, shape (round(record_s * sample_rate),), sample 0 = the
            trial's time zero; ``facts``: levels, clipping, realised and arrival offsets.

        Raises
        ------
        DeviceError
            Unknown speaker, negative offset, bad signal or record length, closed backend.
        RigError
            Unknown placement.
        """
        rig = self.rig
        fs = self.sample_rate
        if self._closed:
            raise DeviceError(f"sim backend for rig {rig.name!r} is closed")
        if not (record_s > 0 and np.isfinite(record_s)):
            raise DeviceError(f"sim backend: record_s must be > 0 seconds, got {record_s}")
        for spk, pb in plays.items():
            if spk not in rig.speakers:
                raise DeviceError(f"sim rig {rig.name!r}: no speaker {spk!r} "
                                  f"(have: {', '.join(rig.speakers)})")
            if not (pb.offset_samples >= 0 and np.isfinite(pb.offset_samples)):
                raise DeviceError(f"sim rig {rig.name!r}: speaker {spk!r}: offset_samples must be "
                                  f">= 0, got {pb.offset_samples}")
            if np.ndim(pb.signal) != 1:
                raise DeviceError(f"sim rig {rig.name!r}: speaker {spk!r}: signal must be 1-D "
                                  f"(n_samples,), got shape {np.shape(pb.signal)}")

        chans = self.channels(placement)
        mics = list(rig.mics)
        facts_by_mic = {m: mic_facts(rig.mics[m]) for m in mics}
        rng = np.random.default_rng([self.seed % (2**63), self.trial_index])
        self.trial_index += 1

        n_rec = int(round(record_s * fs))
        slow = max(0.0, -min(f.clock_ppm for f in facts_by_mic.values()))
        n_sig = n_rec + int(np.ceil(n_rec * slow * 1e-6)) + 32

        facts = TrialFacts(backend=self.name, sample_rate=fs, placement=placement,
                           latency_samples=self.extra_latency_samples, xruns=0)
        nfft, spec = self._spectrum(placement, n_sig)
        # the diffuse field and self-noise join in the frequency domain: one inverse FFT for
        # everything, and the acoustic noise goes through the mic's clock like the speakers do
        acc = self._noise_spectrum(rng, nfft, placement)
        for spk, pb in plays.items():
            lim = limit_for(rig.speakers[spk], pb.signal, fs)
            x = lim.signal
            record_limit(facts, spk, lim, rig.speakers[spk].max_dbfs)
            facts.speaker_peak_dbfs[spk], facts.speaker_rms_dbfs[spk] = _levels_dbfs(x)
            facts.realised_offsets_samples[spk] = float(pb.offset_samples)
            if pb.offset_samples + len(x) > n_rec:
                facts.notes.append(f"speaker {spk!r}: playback runs past the {record_s:g} s recording")
            delayed = fractional_delay(x, float(pb.offset_samples) + self.extra_latency_samples, n_sig)
            played = sfft.rfft(delayed, nfft)                       # float32 FFTs: -140 dB error
            acc += played[None, :] * spec[spk]
            db, dba = self._source_levels(played, spec[spk], nfft, len(x))   # its own level per mic
            facts.source_rms_dbfs[spk] = dict(zip(mics, map(float, db)))
            facts.source_rms_dbfs_a[spk] = dict(zip(mics, map(float, dba)))
            facts.arrival_offsets_samples[spk] = {
                m: (float(pb.offset_samples) + chans[m].direct_delay_samples[spk])
                * (1.0 + facts_by_mic[m].clock_ppm * 1e-6)
                for m in mics
            }
        heard = sfft.irfft(acc, nfft, axis=-1)[:, :n_sig]
        out: dict[str, np.ndarray] = {}
        for i, m in enumerate(mics):
            mf = facts_by_mic[m]
            y = apply_clock_ppm(heard[i], mf.clock_ppm, n_rec) if mf.clock_ppm else heard[i, :n_rec]
            extra = injected(self.rig, self.injections, m, n_rec, rng) if self.injections else None
            y = y if extra is None else y + extra
            y32, n_clip = adc(y, mf.bits)
            out[m] = y32
            facts.clipped_samples[m] = n_clip
            facts.mic_peak_dbfs[m], facts.mic_rms_dbfs[m] = _levels_dbfs(y32)
        self.injections = spend(self.injections)
        return Capture(mics=out, facts=facts)

    def _noise_spectrum(self, rng: np.random.Generator, n: int, placement: str | None) -> np.ndarray:
        """Diffuse background + self-noise of an ``n``-sample stretch as rfft bins, shape
        (n_mics, n // 2 + 1), digital units."""
        key = (placement, n)
        if key not in self._colorings:
            if len(self._colorings) > 8:
                self._colorings.clear()
            rig = self.rig
            mics = list(rig.mics)
            pos = placement_positions(rig, placement)
            facts = [mic_facts(rig.mics[m]) for m in mics]
            freqs = np.fft.rfftfreq(n, 1.0 / self.sample_rate)
            resp = np.stack([mic_response_db(rig.mics[m].tier, freqs, rig) for m in mics])
            # r1-follow: a measured room's recorded background replaces the diffuse field (added below)
            level = rig.room.noise_dbspl if rig.room.noise is None else -200.0
            coloring = noise_coloring(
                np.array([pos[m] for m in mics]), n, self.sample_rate, level,
                np.array([f.gain_per_pa for f in facts]), resp,
                np.array([self_noise_rms(f.self_noise_dba, f.gain_per_pa) for f in facts]),
            ).astype(np.float32)    # noise needs no double precision; halves the per-trial draw
            self._colorings[key] = (coloring, noise_terms(coloring))
        coloring, terms = self._colorings[key]
        spec = noise_spectrum(coloring, rng, terms)
        if self.rig.room.noise is not None:  # r1-follow: noise recorded in the room
            from testbed.acoustics.room_noise import recorded_noise

            bed = recorded_noise(self.rig, list(self.rig.mics), n, rng).astype(np.float32)
            spec = spec + sfft.rfft(bed, n, axis=-1)
        return spec

    def close(self) -> None:
        """Drop cached channels; further trials raise DeviceError."""
        self._closed = True
        self._channels.clear()
        self._spectra.clear()
        self._trimmed.clear()
        self._colorings.clear()
