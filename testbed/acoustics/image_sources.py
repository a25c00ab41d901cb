"""Image-source RIRs of a shoebox rendered from pyroomacoustics' own image sources, faster.

pyroomacoustics' ``ShoeBox.compute_rir`` builds every RIR band by band: a multi-band room
(band RT60s, air absorption) runs its fractional-delay builder once per octave band over every
image source, and a calibration that tries several absorptions recomputes the image sources
each time. In a shoebox whose six walls share one material neither is needed: an image of
reflection order ``o`` reaches the mic with amplitude ``r_b ** o * g / d`` in octave band ``b``
(``r_b = sqrt(1 - alpha_b)``, ``g`` the source's directivity towards it, ``d`` its distance,
times air absorption), so::

    h = sum_b analysis_b( sum_o r_b ** o * P[o, b] )

with ``P[o, b]`` the RIR of the order-``o`` images at unit reflection (band-independent
without air absorption). :class:`ImageSources` computes the image sources once and, where it
pays, ``P`` once; :meth:`ImageSources.render` is then a weighted sum and pyroomacoustics' own
octave-band analysis. Every step is pyroomacoustics' own (``image_source_model``,
``libroom.rir_builder``, ``octave_bands.analysis``, the directivity's ``get_response``, the
air-absorption formula): the RIRs are ``compute_rir``'s to float32 rounding
(tests/acoustics/test_room_speed_regression.py). Ray-traced rooms are not decomposable (the
tail's energy depends on the absorption): :func:`testbed.acoustics.room._render` keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


class ImageSources:
    """The image sources of fixed sources and mics in a shoebox, rendered for any wall absorption.

    Parameters
    ----------
    shoebox : ``coeffs -> pyroomacoustics.ShoeBox``: the room, not yet simulated, with one wall
        material of energy absorption ``coeffs`` (:func:`testbed.acoustics.room._shoebox`), no
        ray tracing; its image-source order, bands and air absorption are used.
    coeffs : an absorption (one value, or one per band); it fixes the band layout.
    sources, mics : positions in metres.
    directivities : one pyroomacoustics directivity (None: omni) per source.
    reweight : precompute the per-order partial RIRs, for several :meth:`render` calls with
        different absorptions; without it they are precomputed only where that is cheaper for a
        single render (several bands, no air absorption).
    """

    def __init__(self, shoebox: Callable[[Sequence[float]], object], coeffs: Sequence[float],
                 sources: Sequence[Sequence[float]], mics: Sequence[Sequence[float]],
                 directivities: Sequence | None = None, reweight: bool = False) -> None:
        from testbed.acoustics.pra import pyroomacoustics

        pra = pyroomacoustics()
        from pyroomacoustics.doa.utils import cart2spher

        box = shoebox(coeffs)
        if box.simulator_state["rt_needed"]:
            raise ValueError("ImageSources: a ray-traced room cannot be re-weighted; render it in full")
        self._shoebox, self.max_order = shoebox, int(box.max_order)
        dirs = [None] * len(sources) if directivities is None else list(directivities)
        for s in sources:
            box.add_source(list(s))
        box.add_microphone_array(np.asarray(mics, dtype=np.float64).T)
        box.image_source_model()
        self._octave_bands = box.octave_bands
        self._n_abs = len(box.walls[0].absorption)
        self._fs, fdl = box.fs, pra.constants.get("frac_delay_length")
        self._fdl, self._lead = fdl, fdl // 2
        self._lut, self._threads = pra.constants.get("sinc_lut_granularity"), pra.constants.get("num_threads")
        air = np.asarray(box.air_absorption) if box.simulator_state["air_abs_needed"] else None
        self._air = air
        # one absorption on a multi-band air absorption still makes a multi-band RIR (as pyroomacoustics)
        self._n_bands = max(self._n_abs, 1 if air is None else air.size)
        decompose = reweight or (self._n_bands > 1 and air is None)
        # per [s][m]: time (float32, s), amplitude at unit reflection without air (float64), distance (m),
        # reflection orders, order edges (decomposed) and RIR length N
        self._paths: list[list[tuple]] = []
        for si, src in enumerate(box.sources):
            row = []
            for mi, mic in enumerate(box.mic_array.R.T):
                vis = box.visibility[si][mi, :].astype(bool)
                keep = np.flatnonzero(vis)
                if decompose:   # each order's images contiguous, for one build per order
                    keep = keep[np.argsort(src.orders[keep], kind="stable")]
                orders = src.orders[keep]
                dist = np.sqrt(np.sum((src.images[:, keep] - mic[:, None]) ** 2, axis=0))
                time = dist / box.c + self._lead / self._fs
                n = int(math.ceil(time.max() * self._fs + self._lead + 1)) + 1
                amp = 1.0 / dist
                if dirs[si] is not None:   # as compute_ism_rir (its float32 angles included)
                    azimuth, colatitude, _ = cart2spher(src.directions[mi][:, keep])
                    amp = amp * dirs[si].get_response(azimuth=azimuth, colatitude=colatitude, degrees=False)
                edges = np.searchsorted(orders, np.arange(self.max_order + 2)) if decompose else None
                row.append((time.astype(np.float32), amp, dist, orders, edges, n))
            self._paths.append(row)
        self._parts = [[self._order_parts(p) for p in row] for row in self._paths] if decompose else None

    def _build(self, out: np.ndarray, time: np.ndarray, amp: np.ndarray) -> None:
        from pyroomacoustics import libroom

        libroom.rir_builder(out, time, np.ascontiguousarray(amp, dtype=np.float32), self._fs, self._fdl,
                            self._lut, self._threads)

    def _amplitude(self, path: tuple, band: int) -> np.ndarray:
        """Amplitude of every image at unit reflection in ``band`` (air absorption as
        ``ism.apply_air_aborption``), float64."""
        _, amp, dist, *_ = path
        return amp if self._air is None else amp * np.exp(-0.5 * self._air[band] * dist)

    def _order_parts(self, path: tuple) -> np.ndarray:
        """(n_orders, n_air_bands, N) float32: the RIR of each order's images at unit reflection
        (one band without air absorption: the same in every band)."""
        time, _, _, _, edges, n = path
        n_air = 1 if self._air is None else self._n_bands
        parts = np.zeros((self.max_order + 1, n_air, n), dtype=np.float32)
        for b in range(n_air):
            amp = self._amplitude(path, b)
            for o in range(self.max_order + 1):
                lo, hi = int(edges[o]), int(edges[o + 1])
                if hi > lo:
                    self._build(parts[o, b], time[lo:hi], amp[lo:hi])
        return parts

    def _reflection(self, coeffs: Sequence[float]) -> np.ndarray:
        """Pressure reflection coefficient per pyroomacoustics band, shape (n_bands,)."""
        a = np.asarray(self._shoebox(coeffs).walls[0].absorption, dtype=np.float32)
        if a.size != self._n_abs:
            raise ValueError(f"ImageSources: {a.size} absorption bands, built for {self._n_abs}")
        return np.broadcast_to(np.sqrt(1.0 - a).astype(np.float64), (self._n_bands,))

    def render(self, coeffs: Sequence[float]) -> list[list[np.ndarray]]:
        """RIRs ``[s][m]`` (float32, index 0 = emission) with wall absorption ``coeffs``, as
        :func:`testbed.acoustics.room._render` gives them."""
        r = self._reflection(coeffs)
        out = []
        for si, row in enumerate(self._paths):
            out_row = []
            for mi, path in enumerate(row):
                time, _, _, orders, _, n = path
                h = np.zeros(n, dtype=np.float32)
                for b in range(self._n_bands):
                    if self._parts is not None:
                        parts = self._parts[si][mi]
                        weights = r[b] ** np.arange(self.max_order + 1)
                        band = np.einsum("o,on->n", weights, parts[:, min(b, parts.shape[1] - 1)].astype(np.float64))
                        band = band.astype(np.float32)
                    else:
                        band = np.zeros(n, dtype=np.float32)
                        self._build(band, time, r[b] ** orders * self._amplitude(path, b))
                    h += self._octave_bands.analysis(band, band=b) if self._n_bands > 1 else band
                out_row.append(h[self._lead:])
            out.append(out_row)
        return out
