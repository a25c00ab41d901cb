"""Measured rooms: a folder of the lab's own impulse responses as the rig's channels.

A rig with ``[room] model = "measured"`` and ``irs = "DIR"`` (relative to the rig file)
reads one file per speaker -> mic path::

    DIR/<speaker>__<mic>.wav|flac               the rig's base positions
    DIR/<speaker>__<mic>__<placement>.wav|flac  a named placement (needed for every path the
                                                placement moves; others fall back to the base file)

Any sample rate, bit depth and channel count: ``[room] channel = N`` (1-based) picks the
channel, the rig's rate is reached with :func:`scipy.signal.resample_poly`. Each IR is then
shifted (cut or zero-padded, whole samples; ``[room] align = "file"`` keeps the file's
timing instead) so that its onset (ISO 3382: -20 dB re peak,
:func:`testbed.acoustics.irstats.onset_index`) sits at the path's geometric delay ``r / c``,
the instant a shoebox channel's direct sound arrives. Levels stay as recorded (a
calibration IR is digital-to-digital already) unless ``[room] gain_db`` is given; the
speaker and mic models are applied on top only with ``room_only = true``.

A measured path becomes the same :class:`~testbed.acoustics.channel.Channel` the
image-source model produces, so the simulator, ``ChannelBank`` and everything downstream
has one code path. Every malformed folder is one :class:`~testbed.errors.RigError` line
naming the file.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from testbed.acoustics.channel import Channel, mic_noise_rms, pair_fir, placement_positions, speaker_gain_pa
from testbed.acoustics.irstats import onset_index
from testbed.acoustics.responses import mic_facts
from testbed.errors import RigError
from testbed.rig.geometry import SPEED_OF_SOUND_M_S

if TYPE_CHECKING:
    from testbed.rig import Rig

#: File extensions read as impulse responses; other files in the folder are ignored.
IR_EXTENSIONS = (".wav", ".flac")
#: Separator between speaker, mic and placement in an IR file name.
SEP = "__"

_Key = tuple[str, str, "str | None"]


@dataclass(frozen=True)
class IrFile:
    """One impulse-response file of a measured-room folder."""

    speaker: str
    mic: str
    placement: str | None
    path: Path


def ir_folder(rig: "Rig") -> Path:
    """The rig's IR folder (``room.irs`` relative to the rig file); RigError if it is not a folder."""
    if rig.room.irs is None:
        raise RigError(f"{rig.source or rig.name}: room.irs: not a measured-room rig")
    d = Path(rig.room.irs)
    if not d.is_absolute() and rig.source is not None:
        d = Path(rig.source).parent / d
    if not d.is_dir():
        raise RigError(f"{rig.source or rig.name}: room.irs: no such folder {d}")
    return d


def parse_ir_name(path: Path) -> tuple[str, str, str | None] | None:
    """``(speaker, mic, placement)`` from ``<speaker>__<mic>[__<placement>].<ext>``, None if malformed."""
    parts = path.stem.split(SEP)
    if len(parts) not in (2, 3) or not all(parts):
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def scan_folder(folder: Path, speakers=None, mics=None, placements=None) -> dict[_Key, IrFile]:
    """Every IR file of ``folder`` by (speaker, mic, placement), checking names against the rig.

    ``speakers``, ``mics``, ``placements``: the names a rig has (None: accept any).

    Raises
    ------
    RigError
        A malformed name, an unknown speaker, mic or placement, or two files for one path.
    """
    found: dict[_Key, IrFile] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IR_EXTENSIONS or not p.is_file():
            continue
        parsed = parse_ir_name(p)
        if parsed is None:
            raise RigError(f"{p}: name must be <speaker>__<mic>.wav|flac or <speaker>__<mic>__<placement>.wav|flac")
        s, m, pl = parsed
        for what, name, have in (("speaker", s, speakers), ("mic", m, mics), ("placement", pl, placements)):
            if name is not None and have is not None and name not in have:
                raise RigError(f"{p}: unknown {what} {name!r} in the name (the rig has: {', '.join(have) or 'none'})")
        if (s, m, pl) in found:
            raise RigError(f"{p}: a second file for {s} -> {m}"
                           f"{f' at {pl}' if pl else ''} (first: {found[(s, m, pl)].path.name})")
        found[(s, m, pl)] = IrFile(s, m, pl, p)
    return found


_READ: OrderedDict[tuple, np.ndarray] = OrderedDict()


def read_ir(path: Path, sample_rate: int, channel: int = 1) -> np.ndarray:
    """One channel (1-based; a mono file's only one) of an IR file, resampled to ``sample_rate`` Hz; float64, shape (n,).

    Cached per (file, modification time, channel, rate); the returned array is read-only.

    Raises
    ------
    RigError
        Not audio, empty, NaN/inf samples, or no such channel, naming the file. (An all-zero
        IR is allowed: a path with no coupling, as an unwired loopback path measures.)
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise RigError(f"{path}: cannot read impulse response: {exc.strerror or exc}") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, int(channel), int(sample_rate))
    if key in _READ:
        _READ.move_to_end(key)
        return _READ[key]
    try:
        data, fs = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # LibsndfileError is a RuntimeError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RigError(f"{path}: not an audio file libsndfile reads ({first})") from None
    if data.shape[0] == 0:
        raise RigError(f"{path}: empty impulse response (0 samples)")
    if data.shape[1] == 1:
        channel = 1  # a mono file serves whichever channel the rig picks from multi-channel ones
    elif channel > data.shape[1]:
        raise RigError(f"{path}: room.channel = {channel} but the file has {data.shape[1]} channel(s)")
    x = data[:, channel - 1]
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise RigError(f"{path}: {bad} NaN or infinite sample(s) in channel {channel}")
    if int(fs) != int(sample_rate):
        g = math.gcd(int(fs), int(sample_rate))
        x = resample_poly(x, int(sample_rate) // g, int(fs) // g)
    x = np.ascontiguousarray(x, dtype=np.float64)
    x.setflags(write=False)
    _READ[key] = x
    while len(_READ) > 256:
        _READ.popitem(last=False)
    return x


def _moves(rig: "Rig", placement: str | None, speaker: str, mic: str) -> bool:
    if placement is None:
        return False
    moved = rig.placements.get(placement, {})
    return speaker in moved or mic in moved


def path_files(rig: "Rig") -> dict[_Key, IrFile]:
    """The file of every path the rig can use: (speaker, mic, None) and (speaker, mic, placement)
    for each placement that moves the speaker or the mic.

    Raises
    ------
    RigError
        A malformed name or a missing pair (naming the file that should be there).
    """
    folder = ir_folder(rig)
    found = scan_folder(folder, rig.speakers, rig.mics, rig.placements)
    ext = next(iter(found.values())).path.suffix if found else ".wav"
    need: dict[_Key, IrFile] = {}
    for s in rig.speakers:
        for m in rig.mics:
            for pl in (None, *rig.placements):
                if pl is not None and not _moves(rig, pl, s, m):
                    continue
                if (s, m, pl) not in found:
                    name = SEP.join(x for x in (s, m, pl) if x) + ext
                    raise RigError(f"{folder / name}: missing impulse response for {s} -> {m}"
                                   f"{f' at placement {pl}' if pl else ''} (rig {rig.source or rig.name})")
                need[(s, m, pl)] = found[(s, m, pl)]
    return need


def check_measured(rig: "Rig") -> None:
    """Read every IR the rig needs once (names, content, pairs); RigError naming the file if any is bad."""
    for f in path_files(rig).values():
        read_ir(f.path, rig.sample_rate, rig.room.channel)
    from testbed.acoustics.room_noise import read_room_noise

    read_room_noise(rig)  # [room] noise: the room's recorded background, if any


def ir_for(rig: "Rig", speaker: str, mic: str, placement: str | None = None) -> tuple[IrFile, np.ndarray]:
    """The file and the resampled (unaligned) IR of one path, the placement's own file where it has one."""
    files = path_files(rig)
    key = (speaker, mic, placement if _moves(rig, placement, speaker, mic) else None)
    f = files[key]
    return f, read_ir(f.path, rig.sample_rate, rig.room.channel)


def align_onset(h: np.ndarray, onset: int, target: int) -> np.ndarray:
    """``h`` shifted by whole samples so index ``onset`` lands on ``target`` (cut or zero-pad the front)."""
    shift = int(target) - int(onset)
    if shift >= 0:
        return np.concatenate([np.zeros(shift), h])
    return np.asarray(h[-shift:])


_CHANNELS: OrderedDict[tuple, "Channel"] = OrderedDict()


def measured_channel(rig: "Rig", mic: str, placement: str | None = None) -> "Channel":
    """The channel from every speaker to ``mic`` from the rig's measured IRs (cached).

    Returns
    -------
    Channel
        ``h[speaker]``: float32, the file's IR resampled, onset at ``round(r / c * fs)``,
        times ``10 ** (gain_db / 20)``; ``direct_delay_samples`` and ``distance_m`` from the
        rig's geometry; ``noise_rms`` from ``room.noise_dbspl`` and the mic model.
    """
    pos = placement_positions(rig, placement)
    files = {s: ir_for(rig, s, mic, placement) for s in rig.speakers}
    key = (f"{rig.source}|{rig.model_dump_json()}", mic, placement,
           tuple((s, str(f.path), f.path.stat().st_mtime_ns) for s, (f, _) in files.items()))
    if key in _CHANNELS:
        _CHANNELS.move_to_end(key)
        return _CHANNELS[key]
    facts = mic_facts(rig.mics[mic])
    gain = 10 ** (rig.room.gain_db / 20) if rig.room.gain_db is not None else 1.0
    h, delay, dist = {}, {}, {}
    for s, (_, raw) in files.items():
        d = float(np.linalg.norm(np.subtract(pos[mic], pos[s])))
        dist[s] = d
        delay[s] = d / SPEED_OF_SOUND_M_S * rig.sample_rate
        if rig.room.align == "file":  # sample 0 is already the emission (a calibration's IRs)
            x = np.array(raw) * gain
        else:
            x = align_onset(raw, onset_index(raw), int(round(delay[s]))) * gain
        if rig.room.room_only:
            x = x * speaker_gain_pa(rig.speakers[s]) * facts.gain_per_pa
            fir = pair_fir(rig, s, mic)
            if fir is not None:
                from scipy.signal import oaconvolve

                x = oaconvolve(x, fir)[(fir.size - 1) // 2:][:x.size]
        hs = x.astype(np.float32)
        hs.setflags(write=False)
        h[s] = hs
    used = {k: tuple(pos[k]) for k in (*rig.speakers, mic)}
    ch = Channel(mic=mic, placement=placement, sample_rate=int(rig.sample_rate), h=h,
                 noise_rms=mic_noise_rms(rig, mic), direct_delay_samples=delay, distance_m=dist,
                 positions_m=used, clock_ppm=facts.clock_ppm, bits=facts.bits)
    _CHANNELS[key] = ch
    while len(_CHANNELS) > 64:
        _CHANNELS.popitem(last=False)
    return ch


def measured_path_stats(rig: "Rig", placement: str | None = None) -> list[dict]:
    """Per path: file, length, RT60 (T20/T30), DRR, energy, onset in the file and the geometric delay.

    ``energy_db`` is ``10 log10(sum h^2)`` of the file's IR (before ``gain_db``): a digital
    path's gain, to compare with a simulated rig's paths when choosing ``gain_db``.

    ``onset_samples`` is where the file's direct sound starts (after resampling to the rig
    rate); the channel moves it to ``geometric_delay_samples``.
    """
    from testbed.acoustics.irstats import ir_stats
    from testbed.rig import path_geometry

    out = []
    for g in path_geometry(rig, placement):
        f, raw = ir_for(rig, g.speaker, g.mic, placement)
        st = ir_stats(raw, rig.sample_rate)
        d = st.as_dict()
        out.append({"speaker": g.speaker, "mic": g.mic, "placement": placement, "file": str(f.path),
                    "length_s": d["length_s"], "rt60_s": d["rt60_s"], "t20_s": d["t20_s"],
                    "t30_s": d["t30_s"], "drr_db": d["drr_db"], "bands": d["bands"],
                    "energy_db": 10 * math.log10(max(float(np.sum(raw ** 2)), 1e-30)),
                    "onset_samples": st.onset_samples, "onset_ms": st.onset_samples / rig.sample_rate * 1e3,
                    "geometric_delay_samples": g.delay_samples, "geometric_delay_ms": g.delay_ms})
    return out


def skeleton_toml(folder: Path, out: Path, name: str | None = None, sample_rate: int = 16000) -> str:
    """A rig TOML skeleton for an IR folder: speakers, mics and placements from the file names.

    Positions are placeholders the operator must replace with the measured ones (each is
    marked ``# PLACEHOLDER``): the channel puts each IR's direct sound at the geometric
    delay of these positions. Speakers named ``user``/``adversary`` keep that role;
    otherwise the first (sorted) is the user and the second the adversary.

    Raises
    ------
    RigError
        No IR files, a malformed name, or more than two speakers.
    """
    import json
    import os

    folder = Path(folder)
    if not folder.is_dir():
        raise RigError(f"{folder}: no such folder of impulse responses")
    found = scan_folder(folder)
    if not found:
        raise RigError(f"{folder}: no <speaker>__<mic>.wav|flac files")
    speakers = sorted({k[0] for k in found})
    mics = sorted({k[1] for k in found})
    places = sorted({k[2] for k in found if k[2]})
    if len(speakers) > 2:
        raise RigError(f"{folder}: {len(speakers)} speakers in the file names ({', '.join(speakers)}); "
                       "a rig has one user and at most one adversary speaker")
    roles = {}
    for role in ("user", "adversary"):
        if role in speakers:
            roles[role] = role
    rest = [s for s in speakers if s not in roles.values()]
    for role in ("user", "adversary"):
        if role not in roles and rest:
            roles[role] = rest.pop(0)
    irs = os.path.relpath(folder.resolve(), Path(out).resolve().parent)
    q = json.dumps
    lines = [
        f"# Measured-room rig written by `testbed rig from-irs {folder}`.",
        "# EDIT every line marked PLACEHOLDER: the room size and the positions where the IRs were",
        "# measured. Each IR's direct sound is moved to the geometric delay of these positions.",
        f"name = {q(name or folder.name)}",
        f"sample_rate = {int(sample_rate)}",
        'backend = "sim"',
        "",
        "[room]",
        'model = "measured"',
        f"irs = {q(irs)}",
        "channel = 1                      # which channel of multi-channel IR files",
        "size_m = [6.0, 5.0, 3.0]         # PLACEHOLDER: the room's length, width, height in metres",
        "noise_dbspl = 35",
        "",
    ]
    for i, (role, s) in enumerate((r, s) for r, s in roles.items()):
        lines += [f"[speakers.{s}]", f'role = "{role}"',
                  f"position_m = [1.0, {1.0 + 2.0 * i:.1f}, 1.2]   # PLACEHOLDER", f"channel = {i + 1}", ""]
    for j, m in enumerate(mics):
        lines += [f"[mics.{m}]", 'tier = "reference"               # the IRs include the mic: only noise and ADC use it',
                  f"position_m = [3.0, {1.5 + 0.2 * j:.1f}, 1.0]   # PLACEHOLDER", f"channel = {j + 1}", ""]
    lines += ["[dut]", f"mic = {q(mics[0])}", "models = []", ""]
    for p in places:
        moved = sorted({k[0] for k in found if k[2] == p})
        lines.append(f"[placements.{p}]")
        lines += [f"{s} = [2.0, 2.5, 1.2]   # PLACEHOLDER: where {s} stood for {p}" for s in moved]
        lines.append("")
    return "\n".join(lines)
