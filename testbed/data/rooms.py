"""Random small rooms: a seeded pool of room impulse responses for reverberation augmentation."""

from __future__ import annotations

import numpy as np


#: Octave bands (Hz) of a realistic room's reverberation time, and the range of each band's RT60
#: relative to the 500 Hz-1 kHz one (drawn per room): furnished rooms usually ring longer at low
#: frequencies and shorter at high ones (the rir-dev rooms measure 250 Hz at 0.1-2.5x and 4 kHz at
#: 0.5-1.1x their mid RT60; the basement is the exception at low frequencies).
REALISTIC_BANDS_HZ = (125, 250, 500, 1000, 2000, 4000)
REALISTIC_BAND_RATIO = ((1.0, 2.5), (1.0, 2.0), (1.0, 1.0), (1.0, 1.0), (0.8, 1.0), (0.6, 0.95))


def _band_material(pra, rng: np.random.Generator, rt60: float, size: np.ndarray):
    """A frequency-dependent material giving ``rt60`` (s) at 500 Hz-1 kHz and a drawn band profile."""
    coeffs = []
    for lo, hi in REALISTIC_BAND_RATIO:
        try:
            a, _ = pra.inverse_sabine(rt60 * float(rng.uniform(lo, hi)), size)
        except ValueError:   # too reverberant for this room: its most reverberant surface
            a = 0.05
        coeffs.append(float(min(max(a, 0.01), 0.99)))
    return pra.Material({"coeffs": coeffs, "center_freqs": list(REALISTIC_BANDS_HZ)})


def random_rir(rng: np.random.Generator, sample_rate: int = 16000,
               rt60_s: tuple[float, float] = (0.15, 0.7), realistic: bool = False) -> tuple[np.ndarray, dict]:
    """One image-source RIR of a random shoebox room (pyroomacoustics).

    Parameters
    ----------
    rng : numpy Generator
    sample_rate : int
        Hz.
    rt60_s : (low, high)
        Range the reverberation time is drawn from, seconds.
    realistic : bool
        Octave-band absorption (a drawn profile, :data:`REALISTIC_BAND_RATIO`: longer RT60 at low
        frequencies), air absorption, and source-mic distances up to 6 m; ``False``: one
        frequency-flat absorption and distances up to 4 m (the corpus default before issue 20).

    Returns
    -------
    rir : (n_taps,) float32, normalised so its direct-path peak is 1.0 and its onset is at tap 0.
    facts : dict with ``size_m``, ``rt60_s`` (delivered: T30 of the IR, 500 Hz-1 kHz; None if
        it cannot be measured), ``rt60_requested_s`` (drawn), ``distance_m``.
    """
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()

    size = np.array([rng.uniform(2.5, 8.0), rng.uniform(2.5, 6.0), rng.uniform(2.3, 3.5)])
    rt60 = float(rng.uniform(*rt60_s))
    try:
        absorption, max_order = pra.inverse_sabine(rt60, size)
    except ValueError:  # the room is too small for this RT60: take the most reverberant it allows
        absorption, max_order = 0.05, 40
    material = _band_material(pra, rng, rt60, size) if realistic else pra.Material(absorption)
    room = pra.ShoeBox(size, fs=sample_rate, materials=material, max_order=int(min(max_order, 40)),
                       air_absorption=realistic)
    far_m = 6.0 if realistic else 4.0
    margin = 0.4
    src = np.array([rng.uniform(margin, s - margin) for s in size])
    src[2] = rng.uniform(1.0, min(1.9, size[2] - margin))
    for _ in range(100):
        mic = np.array([rng.uniform(margin, s - margin) for s in size])
        mic[2] = rng.uniform(0.7, min(1.6, size[2] - margin))
        if 0.3 <= np.linalg.norm(mic - src) <= far_m:
            break
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    onset = int(np.argmax(np.abs(h)))
    h = h[max(onset - 8, 0):]
    h = h / np.max(np.abs(h))
    # record the RT60 this room delivers (T30 at 500 Hz-1 kHz on the IR), not only the drawn one:
    # a room too small for the drawn RT60 falls back to absorption 0.05 and the order is capped
    from testbed.acoustics.irstats import band_rt60_s

    bands = band_rt60_s(h, sample_rate, (500, 1000))
    delivered = 0.5 * (bands[500] + bands[1000])
    return h.astype(np.float32), {"size_m": size.round(2).tolist(),
                                  "rt60_s": round(delivered, 3) if np.isfinite(delivered) else None,
                                  "rt60_requested_s": round(rt60, 3),
                                  "distance_m": round(float(np.linalg.norm(mic - src)), 2)}


def rir_pool(n: int, seed: int, sample_rate: int = 16000,
             rt60_s: tuple[float, float] = (0.15, 0.7), realistic: bool = False) -> list[np.ndarray]:
    """``n`` RIRs of independent random rooms, the same list for the same seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    return [random_rir(rng, sample_rate, rt60_s, realistic)[0] for _ in range(n)]


def measured_rir_pool(rig, n: int, seed: int, sample_rate: int = 16000) -> list[np.ndarray]:
    """``n`` RIRs drawn from a measured-room rig's IR files, for the same augmentation as :func:`rir_pool`.

    Each is one of the rig's measured paths (speakers x mics, base positions) varied as an
    over-the-air attack's EOT varies it (:func:`testbed.acoustics.measured_eot.vary_ir`:
    late-reverb swaps between paths, spectral tilt), then cut 8 taps before its onset and
    normalised to a peak of 1.0 like the shoebox pool. The same list for the same seed.

    Parameters
    ----------
    rig : a loaded rig with ``[room] model = "measured"`` (``testbed.rig.load_rig``).
    n : pool size.
    seed : int
    sample_rate : Hz; the IRs are resampled from the files' rates.

    Raises
    ------
    RigError
        The rig is not a measured room, or its IR folder is malformed.
    """
    from testbed.acoustics.measured import ir_for
    from testbed.errors import RigError

    if rig.room.model != "measured":
        raise RigError(f"{rig.source or rig.name}: room.model: augmentation from measured IRs needs "
                       "model = 'measured'")
    if int(sample_rate) != rig.sample_rate:
        rig = rig.model_copy(update={"sample_rate": int(sample_rate)})
    paths = [np.asarray(ir_for(rig, s, m)[1], dtype=np.float64) for s in rig.speakers for m in rig.mics]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1AB5]))
    return _varied(paths, n, rng, sample_rate)


def ir_folder_files(folder) -> list:
    """Every ``.wav``/``.flac`` under ``folder`` (recursively, sorted): a folder of measured IRs for
    augmentation (any names, rates, bit depths, channel counts). DataError if there is none."""
    from pathlib import Path

    from testbed.acoustics.measured import IR_EXTENSIONS
    from testbed.errors import DataError

    d = Path(folder).expanduser()
    if not d.is_dir():
        raise DataError(f"{d}: reverb irs: no such folder of impulse responses")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IR_EXTENSIONS)
    if not files:
        raise DataError(f"{d}: reverb irs: no .wav or .flac files")
    return files


def ir_folder_digest(folder) -> str:
    """sha256 over the relative names and bytes of the IR files of ``folder`` (a corpus key part:
    the folder's path names it, this is what it holds)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for p in ir_folder_files(folder):
        h.update(f"{p.relative_to(Path(folder).expanduser())}|".encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def folder_rir_pool(folder, n: int, seed: int, sample_rate: int = 16000) -> list[np.ndarray]:
    """``n`` RIRs from a folder of measured impulse responses, for the same augmentation as :func:`rir_pool`.

    Every channel of every file is one measured path; the pool cycles through them, each varied
    like :func:`measured_rir_pool` (late-reverb swaps between the folder's paths, spectral tilt),
    resampled to ``sample_rate``, cut 8 taps before its onset and normalised to a peak of 1.0.
    The same list for the same folder contents and seed.

    Raises
    ------
    DataError
        No such folder, no IR files, or a file that is not audio, empty, or has NaN/inf samples
        (naming the file).
    """
    import soundfile as sf

    from testbed.acoustics.measured import read_ir
    from testbed.errors import DataError, RigError

    paths = []
    for f in ir_folder_files(folder):
        try:
            channels = sf.info(str(f)).channels
        except (RuntimeError, OSError, ValueError, TypeError):
            channels = 1  # read_ir says what is wrong with it
        try:
            for c in range(1, channels + 1):
                h = np.asarray(read_ir(f, int(sample_rate), c), dtype=np.float64)
                if not np.any(h):
                    raise RigError(f"{f}: all-zero impulse response in channel {c}")
                paths.append(h)
        except RigError as exc:
            raise DataError(f"reverb irs: {exc}") from None
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF01D]))
    return _varied(paths, n, rng, sample_rate)


def _varied(paths: list[np.ndarray], n: int, rng: np.random.Generator, sample_rate: int) -> list[np.ndarray]:
    """``n`` responses drawn in turn from ``paths``, each with its late tail resampled from the
    others (no time shift, no gain change), cut 8 samples before its onset and peak-normalised."""
    from testbed.acoustics.irstats import onset_index   # testbed.acoustics loads pyroomacoustics: lazily
    from testbed.acoustics.measured_eot import MeasuredEot, vary_ir

    eot = MeasuredEot(shift_ms=0.0, gain_db=0.0)
    out = []
    for i in range(int(n)):
        k = i % len(paths)
        h = vary_ir(paths[k], [p for j, p in enumerate(paths) if j != k], rng, int(sample_rate), eot)
        h = h[max(onset_index(h) - 8, 0):]
        out.append((h / np.max(np.abs(h))).astype(np.float32))
    return out
