"""The simulator's speed-ups keep its output: RIRs and calibrated absorption as before, to 1e-6.

The reference numbers were produced by the simulator before it rendered rooms from re-weighted
image sources (testbed.acoustics.image_sources) and before band filters were designed once, on
this fixed geometry (ray tracing seeded): a speed-up that changes the RIRs fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.room import (
    RoomSpec,
    SourceDirectivity,
    absorption_bands,
    compute_rirs,
)

FS = 16000
SRC = [(1.2, 1.1, 1.3), (3.9, 2.9, 1.1)]
MIC = [(3.1, 2.2, 1.0), (1.6, 3.1, 1.2)]
DIRS = [SourceDirectivity("subcardioid", 30.0), SourceDirectivity()]
BANDS = (0.4, 0.35, 0.3, 0.3, 0.25, 0.2)

#: name -> (spec, calibrated coeffs, ISM order, per path [n, peak, sum, sum |h|, sum h^2, h[100]])
REFERENCE = {
    "flat": (RoomSpec((5.0, 4.0, 3.0), 0.3, FS), [0.342795373933733], 42, [
        [9927, 103, 25.376433708740894, 29.6268833973878, 0.9498905973090797, -0.03812648355960846],
        [9858, 95, 25.401036384296194, 29.793884155923646, 0.969993914239703, 0.020847326144576073],
        [9876, 50, 34.04195172655457, 39.75046281919884, 2.2357342905658326, -0.005910665728151798],
        [9946, 108, 33.22723226839851, 38.144213258610584, 1.5059679978974947, -0.00982489064335823]]),
    "bands_air": (RoomSpec((5.0, 4.0, 3.0), 0.3, FS, rt60_bands_s=BANDS, air_absorption=True),
                  [0.3464829610860768, 0.3639279074798819, 0.3285741827444561, 0.33763069212379393,
                   0.3477193952382767, 0.46916232491976556], 57, [
        [13370, 103, 24.72044475917056, 26.81654410770232, 0.753935506939359, -0.036931172013282776],
        [13440, 95, 24.744847901014715, 26.643511140583467, 0.7477256679556237, 0.020205175504088402],
        [13430, 50, 33.17216898878039, 36.05169497120021, 1.8764043534309827, -0.005123759154230356],
        [13360, 108, 32.358736912681515, 34.28074004700533, 1.126148617261441, -0.009558881632983685]]),
    "rays": (RoomSpec((5.0, 4.0, 3.0), 0.3, FS, ray_tracing=True, seed=2), [0.342795373933733], 42, [
        [6912, 103, 4.49214061532939, 19.59503418912618, 0.9028299341786155, -0.03812648355960846],
        [7104, 95, 4.716079464372058, 19.923357019646176, 0.9355807112826797, 0.020847326144576073],
        [7168, 50, 6.1999097400704954, 27.685400076557755, 2.2549897800778047, -0.005910665728151798],
        [7040, 108, 5.311952712541512, 23.674920134846417, 1.3136837463018056, -0.00982489064335823]]),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_rirs_and_absorption_are_the_reference_ones(name):
    spec, coeffs, order, paths = REFERENCE[name]
    absorption_bands.cache_clear()
    got_coeffs, got_order = absorption_bands(spec)
    assert got_order == order
    np.testing.assert_allclose(got_coeffs, coeffs, rtol=1e-6)
    rirs = [h for row in compute_rirs(spec, SRC, MIC, DIRS) for h in row]
    for h, (n, peak, total, l1, energy, at_100) in zip(rirs, paths):
        assert len(h) == n and int(np.argmax(np.abs(h))) == peak
        got = [float(np.sum(h, dtype=np.float64)), float(np.sum(np.abs(h), dtype=np.float64)),
               float(np.sum(np.square(h, dtype=np.float64))), float(h[100])]
        np.testing.assert_allclose(got, [total, l1, energy, at_100], rtol=1e-6)


CONFIGS = {
    "flat": dict(rt60_s=0.4),
    "bands": dict(rt60_s=0.4, rt60_bands_s=BANDS),
    "bands_air": dict(rt60_s=0.4, rt60_bands_s=BANDS, air_absorption=True),
    "anechoic_air": dict(rt60_s=0.0, air_absorption=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_image_sources_render_what_pyroomacoustics_renders(name):
    """ImageSources' RIRs are ShoeBox.compute_rir's, with directivity, for any absorption (re-weighted)."""
    from testbed.acoustics.image_sources import ImageSources
    from testbed.acoustics.room import _pra_directivity, _render_pra, _shoebox

    spec = RoomSpec((6.0, 5.0, 3.0), sample_rate=FS, **CONFIGS[name])
    coeffs, order = absorption_bands(spec)
    dirs = [SourceDirectivity("cardioid", 200.0), SourceDirectivity("subcardioid", 30.0)]
    pra_dirs = [_pra_directivity(d) for d in dirs]
    once = ImageSources(lambda c: _shoebox(spec, c, order), coeffs, SRC, MIC, pra_dirs)
    again = ImageSources(lambda c: _shoebox(spec, c, order), coeffs, SRC, MIC, pra_dirs, reweight=True)
    for scale in (1.0, 0.7):
        c = tuple(min(scale * v, 1.0) for v in coeffs)
        want = _render_pra(spec, c, order, SRC, MIC, dirs)
        got = [again.render(c)] + ([once.render(c)] if scale == 1.0 else [])
        for g in got:
            for a, b in zip([h for row in want for h in row], [h for row in g for h in row]):
                assert len(a) == len(b)
                assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))


def test_a_ray_traced_room_is_not_reweighted():
    from testbed.acoustics.image_sources import ImageSources
    from testbed.acoustics.room import _shoebox

    spec = RoomSpec((5.0, 4.0, 3.0), 0.3, FS, ray_tracing=True)
    with pytest.raises(ValueError, match="ray-traced"):
        ImageSources(lambda c: _shoebox(spec, c, 3), (0.3,), SRC[:1], MIC[:1])
