"""Both hardware backends on a real JACK loopback (PortAudio outputs wired to its inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from testbed.audio import Playback
from testbed.rig import load_rig

pytestmark = pytest.mark.jack

BACKENDS = ["sounddevice", "pyaudio"]
CLICK_AT = 400  # the click sits inside the signal, clear of the limiter's fade-in


def _backend(library: str, rig, **kw):
    if library == "sounddevice":
        from testbed.audio.sounddevice_backend import SounddeviceBackend

        return SounddeviceBackend(rig, **kw)
    from testbed.audio.pyaudio_backend import PyAudioBackend

    return PyAudioBackend(rig, **kw)


def _click(n: int = 2000, at: int = CLICK_AT, amp: float = 0.2) -> np.ndarray:
    x = np.zeros(n, np.float32)
    x[at] = amp
    return x


@pytest.fixture
def loop_rig(jack_loopback):
    from tests.conftest import RIGS

    return load_rig(RIGS / "jack-loopback.toml")


@pytest.mark.parametrize("library", BACKENDS)
def test_click_returns_one_period_later(library, loop_rig, jack_loopback):
    """Uncompensated (latency 0): the click comes back exactly one JACK period late on both mics."""
    with _backend(library, loop_rig, latency_samples=0.0) as be:
        cap = be.run_trial({"user": Playback(_click(), 0.0), "adversary": Playback(_click(), 0.0)}, record_s=0.3)
    period = jack_loopback.period
    for mic in ("ref", "cheap"):
        x = cap.mics[mic]
        assert int(np.argmax(np.abs(x))) == CLICK_AT + period, mic
        assert x[CLICK_AT + period] == pytest.approx(0.2, abs=1e-6)
        assert cap.facts.clipped_samples[mic] == 0
        assert cap.facts.mic_peak_dbfs[mic] == pytest.approx(20 * np.log10(0.2), abs=1e-3)
    assert isinstance(cap.facts.xruns, int) and cap.facts.xruns >= 0
    assert cap.facts.backend == library
    assert cap.facts.limited == {"user": False, "adversary": False}


@pytest.mark.parametrize("library", BACKENDS)
def test_compensated_click_lands_at_its_offset(library, loop_rig, jack_loopback):
    """With the loopback latency compensated, a click played at sample k is at sample k of the capture."""
    with _backend(library, loop_rig, latency_samples=float(jack_loopback.period)) as be:
        cap = be.run_trial({"user": Playback(_click(), 37.0)}, record_s=0.3)
    assert int(np.argmax(np.abs(cap.mics["ref"]))) == CLICK_AT + 37
    assert cap.facts.latency_samples == jack_loopback.period
    assert cap.facts.realised_offsets_samples == {"user": 37.0}


@pytest.mark.parametrize("library", BACKENDS)
def test_offset_of_12_5_ms_comes_back_200_samples_apart(library, loop_rig, jack_loopback):
    """User on channel 1 at 0, adversary on channel 2 at 12.5 ms: the clicks arrive 200 samples apart."""
    sr = loop_rig.sample_rate
    with _backend(library, loop_rig, latency_samples=0.0) as be:
        cap = be.run_trial(
            {"user": Playback(_click(), 0.0), "adversary": Playback(_click(), 12.5e-3 * sr)}, record_s=0.4
        )
    t_user = int(np.argmax(np.abs(cap.mics["ref"])))      # mic ch1 <- speaker ch1
    t_adv = int(np.argmax(np.abs(cap.mics["cheap"])))     # mic ch2 <- speaker ch2
    assert abs((t_adv - t_user) - 200) <= 1


@pytest.mark.parametrize("library", BACKENDS)
def test_limiter_holds_on_the_wire(library, loop_rig, jack_loopback):
    """A full-scale attack signal comes back no louder than the adversary speaker's max_dbfs."""
    rng = np.random.default_rng(0)
    attack = np.sign(rng.standard_normal(3000)).astype(np.float32)  # +-1.0 everywhere
    with _backend(library, loop_rig, latency_samples=0.0) as be:
        cap = be.run_trial({"adversary": Playback(attack, 0.0)}, record_s=0.4)
    from testbed.audio.limiter import true_peak

    cap_max = 10 ** (loop_rig.speakers["adversary"].max_dbfs / 20)
    peak = float(np.max(np.abs(cap.mics["cheap"])))
    # the cap is on the true peak (issue #22): a sign wave's samples sit several dB under it
    assert peak <= cap_max
    assert 0.9 * cap_max < true_peak(cap.mics["cheap"]) <= cap_max * (1 + 1e-4)
    assert cap.facts.speaker_true_peak_dbtp["adversary"] <= loop_rig.speakers["adversary"].max_dbfs + 1e-6
    assert cap.facts.limited["adversary"] is True
    assert cap.facts.speaker_peak_dbfs["adversary"] <= loop_rig.speakers["adversary"].max_dbfs + 1e-6


def _rig_with(tmp_path, **hardware) -> Path:
    from tests.conftest import RIGS

    text = (RIGS / "jack-loopback.toml").read_text()
    for key, value in hardware.items():
        text = text.replace('device = "JACK Audio Connection Kit"', f'{key} = {value!r}'.replace("'", '"'))
    p = tmp_path / "rig.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("library", BACKENDS)
def test_unknown_device_exits_2_naming_it_and_listing_what_exists(library, jack_loopback, cli, tmp_path):
    rig = _rig_with(tmp_path, device="Focusrite Scarlett 18i20")
    text = rig.read_text().replace('backend = "sounddevice"', f'backend = "{library}"')
    rig.write_text(text)
    res = cli(["calibrate", rig, "--what", "latency", "--out", tmp_path / "cal"])
    assert res.exit_code == 2
    assert "Focusrite Scarlett 18i20" in res.output
    assert "hardware.device" in res.output
    assert "system, JACK Audio Connection Kit" in res.output     # what exists
    assert "Traceback" not in res.output


def test_missing_channel_is_a_device_error_naming_the_channel(jack_loopback, tmp_path):
    from testbed.audio.sounddevice_backend import SounddeviceBackend
    from testbed.errors import DeviceError

    p = _rig_with(tmp_path)
    p.write_text(p.read_text().replace("[mics.cheap]\ntier = \"electret-cheap\"\nposition_m = [2.6, 2.0, 1.0]\nchannel = 2",
                                       "[mics.cheap]\ntier = \"electret-cheap\"\nposition_m = [2.6, 2.0, 1.0]\nchannel = 5"))
    rig = load_rig(p)
    assert rig.mics["cheap"].channel == 5
    with pytest.raises(DeviceError, match=r"mics\.cheap\.channel: input channel 5 does not exist .* 1\.\.2"):
        SounddeviceBackend(rig)


def test_devices_lists_the_jack_device_in_both_libraries(jack_loopback, cli):
    import json

    res = cli(["devices", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    for lib in BACKENDS:
        jack = [d for d in data["audio"][lib] if d["hostapi"] == "JACK Audio Connection Kit"]
        assert [d["name"] for d in jack] == ["system"], lib
        assert jack[0]["max_input_channels"] == 2 and jack[0]["max_output_channels"] == 2
        assert jack[0]["default_samplerate"] == 16000
    assert isinstance(data["serial"], list)
