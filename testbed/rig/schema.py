"""Pydantic models of a rig file (TOML); see DESIGN.md, "Rig file".

Units are in the field names: metres (``_m``), degrees (``_deg``), dB SPL, dBFS.
Every model forbids unknown keys so a typo is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed.names import casefold_clash, check_model_name, check_name

#: Microphone tiers with built-in models; anything else must be a CSV of (hz, db).
MIC_TIERS = ("reference", "smartphone", "mems", "electret-cheap")
#: Loudspeaker models with built-in responses; anything else must be a CSV of (hz, db).
SPEAKER_MODELS = ("flat", "small-bookshelf", "phone-speaker")
BACKENDS = ("sim", "sounddevice", "pyaudio")

Vec3 = tuple[float, float, float]


class _Strict(BaseModel):
    # allow_inf_nan=False: TOML has nan and inf; no rig number may be either
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Room(_Strict):
    """The room: drawn by ``rig map`` and simulated by the sim backend."""

    size_m: Vec3 = Field(description="length x width x height in metres")
    rt60_s: float = Field(0.4, ge=0.0, le=5.0, description="reverberation time in seconds; 0 = anechoic")
    noise_dbspl: float = Field(35.0, ge=-20.0, le=120.0, description="diffuse background noise at the mics")
    seed: int = 0
    # -- measured rooms (issue 20): the lab's own impulse responses instead of the shoebox --
    model: Literal["shoebox", "measured"] = Field(
        "shoebox", description="shoebox: image-source simulation; measured: impulse responses from 'irs'")
    irs: str | None = Field(
        None, description="measured: folder of <speaker>__<mic>[__<placement>].wav|flac, relative to the rig file")
    channel: int = Field(1, ge=1, description="measured: which channel (1-based) of multi-channel IR files")
    gain_db: float | None = Field(None, description="measured: gain applied to every IR, dB (default: as recorded)")
    align: Literal["geometry", "file"] = Field(
        "geometry", description="measured: move each IR's onset to the geometric delay, or keep the file's "
                                "timing (sample 0 = emission, as `testbed calibrate` writes them)")
    room_only: bool = Field(
        False, description="measured: the IRs are of the room alone; apply the speaker and mic models on top")
    noise: str | None = Field(
        None, min_length=1, description="measured: a WAV/FLAC of the room's background (any rate; resampled), "
                                        "relative to the rig file; replaces the pink diffuse field at noise_dbspl")

    @model_validator(mode="after")
    def _measured_needs_irs(self) -> "Room":
        if self.model == "measured" and not self.irs:
            raise ValueError("model = 'measured' needs irs = \"DIR\" (a folder of impulse responses)")
        if self.model != "measured" and self.irs is not None:
            raise ValueError("irs is only read when model = 'measured'")
        if self.model != "measured" and self.noise is not None:
            raise ValueError("noise (a recording of the room) is only read when model = 'measured'")
        return self

    # -- simulator realism (issue 20 item 5) --------------------------------
    rt60_bands_s: tuple[float, float, float, float, float, float] | None = Field(
        None, description="RT60 per octave band 125, 250, 500, 1k, 2k, 4k Hz in seconds (list, or "
                          "table keyed by Hz); overrides rt60_s, which becomes the 500 Hz/1 kHz mean")
    air_absorption: bool = Field(False, description="simulate air absorption (more at high frequencies)")
    ray_tracing: bool = Field(False, description="hybrid image-source + ray-traced reverberant tail")

    @field_validator("rt60_bands_s", mode="before")
    @classmethod
    def _bands(cls, v):
        if isinstance(v, dict):
            want = ("125", "250", "500", "1000", "2000", "4000")
            keys = {str(k).removesuffix("_hz").replace("k", "000") for k in v}
            if keys != set(want):
                raise ValueError(f"rt60_bands_s needs exactly the bands {', '.join(want)} Hz, "
                                 f"got {', '.join(map(str, v))}")
            v = [v[k] for w in want for k in v if str(k).removesuffix("_hz").replace("k", "000") == w]
        if v is not None and any(float(t) <= 0 for t in v):
            raise ValueError(f"rt60_bands_s: every band needs an RT60 > 0 s, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _mid_rt60(self) -> "Room":
        if self.rt60_bands_s is not None:
            object.__setattr__(self, "rt60_s", round(0.5 * (self.rt60_bands_s[2] + self.rt60_bands_s[3]), 4))
        return self
    # -- end simulator realism ----------------------------------------------

    @field_validator("size_m")
    @classmethod
    def _positive(cls, v: Vec3) -> Vec3:
        if min(v) <= 0:
            raise ValueError(f"room dimensions must be positive, got {list(v)}")
        return v


class Speaker(_Strict):
    role: Literal["user", "adversary"]
    position_m: Vec3
    facing_deg: float = Field(0.0, description="azimuth the speaker faces, degrees from +x towards +y")
    response: str = Field("flat", description="named speaker model or path to a CSV of (hz, db)")
    spl_at_1m_db: float = Field(100.0, description="sound pressure at 1 m on axis for a full-scale (0 dBFS) sine")
    max_dbfs: float = Field(-3.0, le=0.0, description="hard cap on anything ever sent to this speaker")
    max_rms_dbfs: float = Field(0.0, le=0.0, allow_inf_nan=False,
                                description="cap on the RMS of the loudest 1 s sent to this speaker, dBFS")
    max_seconds_at_ceiling: float = Field(1.0, ge=0.0, le=3600.0, allow_inf_nan=False,
                                          description="longest time a signal may sit within 1 dB of max_dbfs (true peak), s")
    channel: int = Field(1, ge=1, description="output channel (1-based) on hardware backends")
    directivity: Literal["omni", "subcardioid", "cardioid", "hypercardioid", "model"] = Field(
        "model", description="sim: radiation pattern pointing at facing_deg; 'model' = the speaker model's "
                             "(small-bookshelf: subcardioid; flat, phone-speaker, CSV: omni)")


class Mic(_Strict):
    tier: str = Field(description="reference | smartphone | mems | electret-cheap | path to a CSV of (hz, db)")
    position_m: Vec3
    channel: int = Field(1, ge=1, description="input channel (1-based) on hardware backends")
    clock_ppm: float = Field(0.0, ge=-1000, le=1000, description="sim: sample-clock error of this mic's ADC")
    sensitivity_dbfs_per_pa: float | None = Field(None, description="override the tier's sensitivity")
    self_noise_dba: float | None = Field(None, description="override the tier's self-noise (dB SPL A)")
    bits: int | None = Field(None, ge=4, le=32, description="override the tier's ADC bit depth")


class DutSerial(_Strict):
    port: str
    baud: int = 115200
    timeout_s: float = Field(2.0, gt=0)


class Dut(_Strict):
    mic: str = Field(description="the mic whose capture the DUT's own models hear")
    models: list[str] = Field(default_factory=list)
    transport: Literal["host", "serial"] = "host"
    serial: DutSerial | None = None

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: list[str]) -> list[str]:
        for m in v:
            check_model_name(m)
        return v

    @model_validator(mode="after")
    def _serial_needs_port(self) -> "Dut":
        if self.transport == "serial" and self.serial is None:
            raise ValueError("transport = 'serial' needs a [dut.serial] section with 'port'")
        return self


class Hardware(_Strict):
    """Hardware backends only: which device and how to drive it."""

    device: str | int | None = Field(None, description="substring of 'device name, host API name', or an index")
    input_device: str | int | None = None
    output_device: str | int | None = None
    blocksize: int = Field(256, ge=16, le=16384)
    latency: Literal["low", "high"] | float = "low"
    tail_s: float = Field(0.3, ge=0.0, le=10.0, description="extra recording after the last playback ends")
    settle_s: float = Field(0.5, ge=0.0, description="silence between trials, for room decay")


class Positioner(_Strict):
    """A GRBL-compatible gantry that moves one speaker between placements."""

    port: str
    baud: int = 115200
    speaker: str = "adversary"
    origin_m: tuple[float, float] = (0.0, 0.0)
    feed_mm_min: float = Field(3000.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)


# -- suspenders (issue 23): conditions that pause a running session ------------------------------
class Suspenders(_Strict):
    """``[suspenders]`` of a rig or a plan (the plan's keys override the rig's): conditions that
    pause a running session instead of recording bad data, checked between trials.

    A paused session polls its conditions every ``poll_s`` and resumes when every one has been
    clear for ``clear_s`` (``resume = "manual"``: and ``testbed session resume ID`` was run).
    """

    ambient_max_dba: float | None = Field(None, ge=-20.0, le=200.0, description=(
        "pause while the ambient level at the reference mic exceeds this, dB SPL A-weighted, "
        "measured in a silent probe of probe_s before each trial"))
    ambient_mic: str | None = Field(None, description="default: the first mic with tier 'reference'")
    probe_s: float = Field(0.25, gt=0.0, le=10.0, description="silent probe length, seconds")
    dut: bool = Field(False, description="pause while the serial DUT does not answer hello")
    positioner: bool = Field(False, description="pause on a positioner alarm or a lost position")
    position_tolerance_mm: float = Field(2.0, gt=0.0, description="drift from the placement that is 'lost'")
    xruns_per_min: float | None = Field(None, ge=0.0, description="pause while xruns over the last minute exceed this")
    clipping: bool = Field(False, description="pause when a reference-tier mic clips; the trial is redone")
    poll_s: float = Field(1.0, gt=0.0, le=600.0, description="seconds between checks while paused")
    clear_s: float = Field(5.0, ge=0.0, le=86400.0, description="seconds every condition must stay clear to resume")
    resume: Literal["auto", "manual"] = "auto"

    @property
    def any(self) -> bool:
        """Whether any condition is switched on."""
        return (self.ambient_max_dba is not None or self.dut or self.positioner
                or self.xruns_per_min is not None or self.clipping)


class Rig(_Strict):
    """A whole rig: room, loudspeakers, microphones, DUT, placements, hardware."""

    name: str
    sample_rate: int = Field(16000, ge=8000, le=192000)
    backend: Literal["sim", "sounddevice", "pyaudio"] = "sim"
    room: Room
    speakers: dict[str, Speaker]
    mics: dict[str, Mic]
    dut: Dut
    placements: dict[str, dict[str, Vec3]] = Field(default_factory=dict)
    hardware: Hardware = Field(default_factory=Hardware)
    positioner: Positioner | None = None
    suspenders: Suspenders | None = None

    #: The file this rig was loaded from, when it came from one (not part of the TOML).
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "")

    @field_validator("speakers", "mics", "placements")
    @classmethod
    def _safe_keys(cls, v: dict) -> dict:
        # each name becomes a file or folder name in a session: one safe pattern, no two
        # names that are one file on a case-insensitive file system
        for k in v:
            check_name(k, "")
        clash = casefold_clash(v)
        if clash:
            raise ValueError(f"{clash[0]!r} and {clash[1]!r} differ only in case (one file on some systems)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Rig":
        roles = [s.role for s in self.speakers.values()]
        for role in ("user", "adversary"):
            n = roles.count(role)
            if n > 1:
                names = [k for k, s in self.speakers.items() if s.role == role]
                raise ValueError(f"speakers: two speakers with role {role!r}: {', '.join(names)}")
        if "user" not in roles:
            raise ValueError("speakers: no speaker with role 'user'")
        if not self.mics:
            raise ValueError("mics: at least one [mics.NAME] is required")
        if self.dut.mic not in self.mics:
            raise ValueError(f"dut.mic: {self.dut.mic!r} is not one of the mics: {', '.join(self.mics)}")
        for pname, moves in self.placements.items():
            for thing, pos in moves.items():
                if thing not in self.speakers and thing not in self.mics:
                    raise ValueError(
                        f"placements.{pname}.{thing}: not a speaker or mic "
                        f"(speakers: {', '.join(self.speakers)}; mics: {', '.join(self.mics)})"
                    )
                self._check_inside(f"placements.{pname}.{thing}", pos)
        for kind, things in (("speakers", self.speakers), ("mics", self.mics)):
            for name, thing in things.items():
                self._check_inside(f"{kind}.{name}.position_m", thing.position_m)
        if self.positioner is not None and self.positioner.speaker not in self.speakers:
            raise ValueError(f"positioner.speaker: {self.positioner.speaker!r} is not a speaker")
        if self.suspenders is not None and self.suspenders.ambient_mic not in (None, *self.mics):
            raise ValueError(f"suspenders.ambient_mic: {self.suspenders.ambient_mic!r} is not one of the mics: "
                             f"{', '.join(self.mics)}")
        return self

    def _check_inside(self, field: str, pos: Vec3) -> None:
        size = self.room.size_m
        if any(not (0.0 <= p <= s) for p, s in zip(pos, size)):
            raise ValueError(
                f"{field}: {list(pos)} is outside the room (room.size_m = {list(size)})"
            )

    # -- convenience -------------------------------------------------------
    def speaker_by_role(self, role: str) -> str:
        """Name of the speaker with ``role`` ('user' or 'adversary')."""
        for name, s in self.speakers.items():
            if s.role == role:
                return name
        raise KeyError(role)

    @property
    def user_speaker(self) -> str:
        return self.speaker_by_role("user")

    @property
    def adversary_speaker(self) -> str | None:
        try:
            return self.speaker_by_role("adversary")
        except KeyError:
            return None

    @property
    def is_physical(self) -> bool:
        return self.backend != "sim"

    def positions(self, placement: str | None = None) -> dict[str, Vec3]:
        """Positions in metres of every speaker and mic, with ``placement`` applied."""
        pos: dict[str, Vec3] = {k: s.position_m for k, s in self.speakers.items()}
        pos.update({k: m.position_m for k, m in self.mics.items()})
        if placement is not None:
            if placement not in self.placements:
                raise KeyError(placement)
            pos.update(self.placements[placement])
        return pos
