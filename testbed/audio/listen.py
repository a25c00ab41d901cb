"""`rig listen`: the quickest way to hear a rig -- an utterance, a noise burst, every mic to FLAC."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from testbed.audio.types import Capture, Playback, TrialFacts
from testbed.errors import DataError, DeviceError

#: The phrase the user speaker says.
TEST_PHRASE = "turn on the light"
#: Silence between the utterance and the adversary's noise burst, seconds.
GAP_S = 0.3
#: Length of the adversary's noise burst, seconds.
BURST_S = 0.5
#: Recording after the burst ends (room decay), seconds.
TAIL_S = 0.5


@dataclass
class MicLevel:
    """One mic's capture as written to disk."""

    mic: str
    tier: str
    peak_dbfs: float
    rms_dbfs: float
    clipped_samples: int
    path: Path

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class ListenResult:
    """What `rig listen` played, recorded and wrote."""

    rig: str
    backend: str
    placement: str | None
    sample_rate: int
    record_s: float
    utterance_s: float
    burst_start_s: float
    mics: list[MicLevel] = field(default_factory=list)
    facts: TrialFacts | None = None

    def as_dict(self) -> dict:
        return {
            "rig": self.rig, "backend": self.backend, "placement": self.placement,
            "sample_rate": self.sample_rate, "record_s": self.record_s,
            "utterance_s": self.utterance_s, "burst_start_s": self.burst_start_s,
            "mics": [m.as_dict() for m in self.mics],
            "facts": self.facts.as_dict() if self.facts else None,
        }


def spoken_phrase(sample_rate: int, seed: int = 0) -> np.ndarray:
    """The spoken test phrase from ``testbed.data.synthesize`` (float32, shape (n_samples,)).

    Raises
    ------
    DataError
        The offline speech synthesiser is not available in this build or failed.
    """
    try:
        from testbed.data import synthesize
    except ImportError:
        raise DataError(
            "rig listen: the offline speech synthesiser (testbed.data.synthesize) is not available "
            "in this build; install the data extras or update the package"
        ) from None
    sig = np.asarray(synthesize(TEST_PHRASE, sample_rate=sample_rate, seed=seed), dtype=np.float32)
    if sig.ndim != 1 or sig.size == 0 or not np.any(sig):
        raise DataError(f"rig listen: the synthesiser returned no audio for {TEST_PHRASE!r}")
    return sig


def listen_plays(rig, utterance: np.ndarray, seed: int = 0) -> tuple[dict[str, Playback], float, float]:
    """The user's utterance (peak 3 dB under its cap) and, if the rig has one, the adversary's burst.

    Returns
    -------
    plays : speaker name -> Playback.
    record_s : how long to record, seconds.
    burst_start_s : when the burst starts, seconds.
    """
    fs = rig.sample_rate
    u = np.asarray(utterance, dtype=np.float64)
    u = u / max(float(np.max(np.abs(u))), 1e-12) * 10 ** ((rig.speakers[rig.user_speaker].max_dbfs - 3) / 20)
    plays = {rig.user_speaker: Playback(u.astype(np.float32), 0.0)}
    start = u.size + int(GAP_S * fs)
    n_burst = int(BURST_S * fs)
    if rig.adversary_speaker is not None:
        rng = np.random.default_rng(seed)
        burst = rng.standard_normal(n_burst)
        cap = 10 ** ((rig.speakers[rig.adversary_speaker].max_dbfs - 3) / 20)
        burst = burst / np.max(np.abs(burst)) * min(cap, 10 ** (-12 / 20))
        plays[rig.adversary_speaker] = Playback(burst.astype(np.float32), float(start))
    record_s = (start + n_burst) / fs + TAIL_S
    return plays, record_s, start / fs


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def listen(
    rig,
    out_dir: Path | str,
    utterance: np.ndarray,
    *,
    calibration: object | None = None,
    placement: str | None = None,
    backend=None,
    seed: int = 0,
) -> ListenResult:
    """Play ``utterance`` on the user speaker and a noise burst on the adversary; write each mic.

    Parameters
    ----------
    rig : the validated rig.
    out_dir : folder for ``<mic>.flac`` (24-bit FLAC at the rig's sample rate); created if missing.
    utterance : float32 PCM, shape (n_samples,), at the rig's sample rate (any level: it is
        normalised to 3 dB under the user speaker's ``max_dbfs``).
    calibration : the rig's calibration profile or None (the caller loads it, e.g. with
        ``testbed.calibration.load_profile(rig)``); hardware captures are then latency-aligned.
        Used only when this call opens the backend.
    placement : a named placement of the rig, or None.
    backend : an open AudioBackend (default: ``testbed.audio.open_backend(rig, calibration, seed)``).
    seed : seed of the noise burst (and of the simulator's noise when opening the backend).

    Raises
    ------
    DeviceError
        The rig's backend is not available or failed; the output folder is not writable.
    """
    import soundfile as sf

    from testbed.audio import open_backend

    plays, record_s, burst_s = listen_plays(rig, utterance, seed)
    own = backend is None
    if own:
        try:
            backend = open_backend(rig, calibration=calibration, seed=seed)
        except ImportError as exc:
            raise DeviceError(f"{rig.source or rig.name}: backend {rig.backend!r} is not available "
                              f"in this build ({exc.name or exc})") from None
    try:
        cap: Capture = backend.run_trial(plays, record_s, placement=placement)
    finally:
        if own:
            backend.close()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeviceError(f"{out}: cannot create the output folder: {exc.strerror or exc}") from None
    res = ListenResult(rig=rig.name, backend=rig.backend, placement=placement, sample_rate=rig.sample_rate,
                       record_s=record_s, utterance_s=plays[rig.user_speaker].signal.size / rig.sample_rate,
                       burst_start_s=burst_s, facts=cap.facts)
    for mic, y in cap.mics.items():
        path = out / f"{_safe(mic)}.flac"
        try:
            sf.write(path, np.clip(y, -1.0, 1.0), rig.sample_rate, subtype="PCM_24", format="FLAC")
        except (OSError, sf.LibsndfileError) as exc:
            raise DeviceError(f"{path}: cannot write FLAC: {exc}") from None
        res.mics.append(MicLevel(mic=mic, tier=rig.mics[mic].tier if mic in rig.mics else "?",
                                 peak_dbfs=cap.facts.mic_peak_dbfs.get(mic, float("nan")),
                                 rms_dbfs=cap.facts.mic_rms_dbfs.get(mic, float("nan")),
                                 clipped_samples=cap.facts.clipped_samples.get(mic, 0), path=path))
    return res
