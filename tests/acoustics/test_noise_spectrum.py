"""The simulator's noise draw: skipping the Cholesky factor's zero rows changes nothing."""

from __future__ import annotations

import numpy as np

from testbed.acoustics.noise import noise_coloring, noise_spectrum, noise_terms


def _coloring(dtype):
    pos = np.array([[1.0, 1.0, 1.0], [1.05, 1.0, 1.0], [2.0, 1.5, 1.2], [3.0, 2.0, 1.0]])
    col = noise_coloring(pos, 2048, 16000, 35.0, np.array([10.0, 20.0, 15.0, 5.0]), None,
                         np.array([1e-4, 2e-4, 1e-4, 3e-4]))
    return col.astype(dtype)


def test_terms_are_the_lower_triangle_of_a_cholesky_coloring():
    assert noise_terms(_coloring(np.float32)) == ((), (1,), (1, 2), (1, 2, 3))


def test_noise_spectrum_with_terms_is_the_full_sum_and_scales_like_a_complex_multiply():
    for dtype in (np.float32, np.float64):
        col = _coloring(dtype)
        got = noise_spectrum(col, np.random.default_rng(5), noise_terms(col))
        full = noise_spectrum(col, np.random.default_rng(5))
        np.testing.assert_array_equal(got, full)
        # the definition: sum_j C[i, j] * (z_re + i z_im)[j] / sqrt(2), in the coloring's precision
        from testbed.acoustics.noise import standard_normal

        z = standard_normal(np.random.default_rng(5), (4, 2, col.shape[-1]), dtype)
        want = np.einsum("ijb,jb->ib", col.astype(np.float64), z[:, 0] + 1j * z[:, 1]) * np.sqrt(0.5)
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype is np.float32 else 1e-12)
        assert got.dtype == (np.complex64 if dtype is np.float32 else np.complex128)
