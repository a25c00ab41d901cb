"""The absorption calibration's probe paths, rendered for successive absorptions at the cost of one.

:func:`testbed.acoustics.room.absorption_bands` renders the same probe paths once per calibration
round, each time with another wall absorption. In a shoebox whose six walls share one material
the image sources, their distances and their reflection orders do not depend on the absorption:
an image of order ``o`` reaches the mic with amplitude ``r_b ** o / d`` (times air absorption) in
octave band ``b``, where ``r_b = sqrt(1 - alpha_b)``. So the RIR is a polynomial in ``r_b``::

    h = sum_b analysis_b( sum_o r_b ** o * P[o, b] )

with ``P[o, b]`` the RIR of the order-``o`` images at unit reflection (pyroomacoustics'
``rir_builder``, band ``b``'s air absorption). :class:`ProbeRenderer` computes the image
sources and ``P`` once; each :meth:`ProbeRenderer.render` is then a weighted sum (and, for a
multi-band room, pyroomacoustics' own octave-band analysis) -- the same RIR that
``ShoeBox.compute_rir`` gives, to float32 rounding. Ray-traced rooms are not decomposable
(the tail's energy depends on the absorption); they are rendered in full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class ProbeRenderer:
    """RIRs of fixed omni sources and mics in ``room`` for any wall absorption.

    Parameters
    ----------
    room : a :class:`~testbed.acoustics.room.RoomSpec` without ray tracing.
    coeffs : any absorption of the calibration (one value, or one per band of ``BANDS_HZ``);
        it fixes nothing but the band layout.
    max_order : image-source order.
    sources, mics : positions in metres.
    """

    def __init__(self, room, coeffs: Sequence[float], max_order: int,
                 sources: Sequence[Sequence[float]], mics: Sequence[Sequence[float]]) -> None:
        from testbed.acoustics.pra import pyroomacoustics
        from testbed.acoustics.room import _shoebox

        if room.ray_tracing:
            raise ValueError("ProbeRenderer: a ray-traced room cannot be re-weighted; render it in full")
        pra = pyroomacoustics()
        from pyroomacoustics import libroom

        self.room, self.max_order = room, int(max_order)
        box = _shoebox(room, coeffs, max_order)
        for s in sources:
            box.add_source(list(s))
        box.add_microphone_array(np.asarray(mics, dtype=np.float64).T)
        box.image_source_model()
        self._octave_bands = box.octave_bands
        self._n_bands = len(box.walls[0].absorption)
        fs, c = box.fs, box.c
        fdl = pra.constants.get("frac_delay_length")
        fdl2, lut = fdl // 2, pra.constants.get("sinc_lut_granularity")
        threads = pra.constants.get("num_threads")
        self._lead = fdl2
        air = box.air_absorption if room.air_absorption else None
        # P[s][m]: (n_orders, n_air_bands, N) float32, n_air_bands = n_bands with air absorption, else 1
        self._parts: list[list[np.ndarray]] = []
        for si, src in enumerate(box.sources):
            row = []
            for mi, mic in enumerate(box.mic_array.R.T):
                vis = box.visibility[si][mi, :].astype(bool)
                orders = src.orders[vis]
                by_order = np.argsort(orders, kind="stable")   # each order's images, contiguous
                orders = orders[by_order]
                dist = np.sqrt(np.sum((src.images[:, vis][:, by_order] - mic[:, None]) ** 2, axis=0))
                time = dist / c + fdl2 / fs
                n = int(math.ceil(time.max() * fs + fdl2 + 1)) + 1
                amp = (1.0 / dist)[None, :]
                if air is not None:
                    amp = amp * np.exp(-0.5 * np.asarray(air)[:, None] * dist)
                time, amp = time.astype(np.float32), np.ascontiguousarray(amp, dtype=np.float32)
                edges = np.searchsorted(orders, np.arange(self.max_order + 2))
                parts = np.zeros((self.max_order + 1, amp.shape[0], n), dtype=np.float32)
                for o in range(self.max_order + 1):
                    lo, hi = int(edges[o]), int(edges[o + 1])
                    for b in range(amp.shape[0] if hi > lo else 0):
                        libroom.rir_builder(parts[o, b], time[lo:hi], amp[b, lo:hi], fs, fdl, lut, threads)
                row.append(parts)
            self._parts.append(row)

    def _reflection(self, coeffs: Sequence[float]) -> np.ndarray:
        """Pressure reflection coefficient per pyroomacoustics band, shape (n_bands,)."""
        from testbed.acoustics.room import _shoebox

        a = np.asarray(_shoebox(self.room, coeffs, self.max_order).walls[0].absorption, dtype=np.float32)
        if a.size != self._n_bands:
            raise ValueError(f"ProbeRenderer: {a.size} absorption bands, built for {self._n_bands}")
        return np.sqrt(1.0 - a).astype(np.float64)

    def render(self, coeffs: Sequence[float]) -> list[list[np.ndarray]]:
        """RIRs ``[s][m]`` (float32, index 0 = emission) with wall absorption ``coeffs``, as
        :func:`testbed.acoustics.room._render` gives them for omni sources."""
        r = self._reflection(coeffs)
        weights = r[:, None] ** np.arange(self.max_order + 1)[None, :]      # (n_bands, n_orders)
        out = []
        for row in self._parts:
            out_row = []
            for parts in row:
                if self._n_bands == 1:
                    h = np.einsum("o,on->n", weights[0], parts[:, 0].astype(np.float64)).astype(np.float32)
                else:
                    h = np.zeros(parts.shape[-1], dtype=np.float32)
                    for b in range(self._n_bands):
                        pb = parts[:, b if parts.shape[1] > 1 else 0].astype(np.float64)
                        band = np.einsum("o,on->n", weights[b], pb).astype(np.float32)
                        h += self._octave_bands.analysis(band, band=b)
                out_row.append(np.asarray(h[self._lead:], dtype=np.float32))
            out.append(out_row)
        return out
