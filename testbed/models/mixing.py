"""Channel mixing kernels of the factorised layers: a 1x1 mix per ensemble member, fused with
max pooling, bias and ReLU where the layer allows, and the affine fold of a per-channel scale.

Split from :mod:`testbed.models.lowrank`, whose layers (:class:`~testbed.models.lowrank.LowRankConv`,
:class:`~testbed.models.lowrank.LowRankLinear`) call them; they hold no parameters.
"""

from __future__ import annotations

import math

import torch

from testbed.errors import ModelError


def _member_major(h: torch.Tensor, n: int) -> torch.Tensor:
    """``(n * b, ...)`` member-major rows as ``(n, b, ...)``; ModelError if the rows do not divide."""
    if h.shape[0] % n:
        raise ModelError(f"low-rank layer: batch of {h.shape[0]} rows is not a multiple of {n} members")
    return h.reshape(n, -1, *h.shape[1:])


def mix_channels(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 shared: bool = False) -> torch.Tensor:
    """A 1x1 convolution ``(B, k, *spatial) -> (B', out, *spatial)`` as a matrix product.

    ``weight`` is ``(out, k)`` (``B' = B``), or ``(n, out, k)``: one matrix per ensemble member,
    applied to the member-major slices of ``h`` (``B = n * b``), or, when ``shared``, to the
    same ``b`` rows for every member (``B' = n * b``). On CPU, oneDNN runs 1x1 convolutions
    with few channels 3-10x slower than this batched matmul.
    """
    spatial, k = h.shape[2:], h.shape[1]
    flat = h.reshape(h.shape[0], k, -1)
    if weight.dim() == 2:
        out = torch.matmul(weight, flat)
    else:
        n = weight.shape[0]
        flat = flat.unsqueeze(0) if shared else _member_major(flat, n)
        out = torch.matmul(weight.unsqueeze(1), flat)
    out = out.reshape(-1, weight.shape[-2], *spatial)
    if bias is not None:
        out += bias.reshape(1, -1, *([1] * len(spatial)))   # in place: no second full-size tensor
    return out


def mix_pooled(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, pool: int,
               shared: bool = False, chunk_bytes: int = 2 << 20, relu: bool = False) -> torch.Tensor:
    """:func:`mix_channels` followed by non-overlapping max pooling of ``pool`` per spatial axis
    (and a ReLU when ``relu``).

    A 1x1 mix acts on each pixel alone, so pooling its output is the maximum, over the
    ``pool ** dims`` offsets of the window, of the mix of that offset's pixels: the layer's mix
    never exists at full resolution in memory, only a cache-sized block of it at a time (for
    the ensemble's many members that full-size tensor and the pass pooling it cost more than
    the convolutions). The result is channels-last (the next convolution reads it without a
    copy). The bias is added after the maximum (it is
    constant over a window), and the ReLU commutes with the maximum.

    Without autograd the work runs in blocks whose intermediates stay in cache (``chunk_bytes``),
    and the bias and ReLU are applied to each block while it is there. A channels-last ``h``
    (what a convolution of a channels-last input returns) is mixed at full resolution a few
    clips at a time, straight from its contiguous rows, and pooled from that in-cache block;
    any other layout is first gathered offset by offset, channels-last. Remainders are dropped,
    as ``max_pool`` does.

    Shapes as :func:`mix_channels`; the spatial sizes of the result are ``size // pool``.
    """
    w = weight.unsqueeze(0) if weight.dim() == 2 else weight          # (n, out, k)
    n, out_ch = w.shape[0], w.shape[1]
    if weight.dim() == 2 or shared:
        hv = h.unsqueeze(0)                                            # (1, b, k, *spatial)
    else:
        hv = _member_major(h, n)
    b, dims = hv.shape[1], h.dim() - 2
    pooled = [size // pool for size in h.shape[2:]]
    hl = hv.permute(0, 1, *range(3, 3 + dims), 2)                      # channels to the end
    if not torch.is_grad_enabled() and hv.shape[0] == n and hl.is_contiguous():
        out = torch.empty(n, b * math.prod(pooled), out_ch, dtype=h.dtype)
        _pooled_blocks(hl, w.transpose(1, 2), bias, pool, relu, out, chunk_bytes)
    else:
        out = _pooled_gathered(hl, w, bias, pool, relu, chunk_bytes)
    return out.reshape(n * b, *pooled, out_ch).permute(0, dims + 1, *range(1, dims + 1))


def _pooled_gathered(hl: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, pool: int, relu: bool,
                     chunk_bytes: int) -> torch.Tensor:
    """:func:`mix_pooled` for any layout ``hl (n or 1, b, *spatial, k)`` -> ``(n, b * P, out)``.

    Each window offset's pixels are gathered into a ``(b * P, k)`` matrix per member (or once,
    shared by all members), then mixed and maximised; with autograd in plain ops, without it in
    cache-sized row blocks (the shared case in :func:`_pooled_fanned_out`).
    """
    n, out_ch, k = w.shape
    b, spatial = hl.shape[1], hl.shape[2:-1]
    pooled = [size // pool for size in spatial]
    n_pix = math.prod(pooled)
    wt = w.transpose(1, 2)                                             # (n, k, out)
    parts = []
    for off in _pool_offsets(pool, len(spatial)):
        view = hl[(slice(None), slice(None), *[slice(f, f + p * pool, pool) for f, p in zip(off, pooled)])]
        parts.append(view.reshape(hl.shape[0], b * n_pix, k))         # (n or 1, b * P, k)
    if torch.is_grad_enabled():
        out = torch.matmul(parts[0], wt)
        for part in parts[1:]:
            out = torch.maximum(out, torch.matmul(part, wt))
        if bias is not None:
            out = out + bias
        return torch.relu(out) if relu else out
    out = torch.empty(n, b * n_pix, out_ch, dtype=parts[0].dtype)
    rows = max(n_pix, (chunk_bytes // max(1, 4 * n * out_ch)) // n_pix * n_pix)
    if hl.shape[0] == 1 and n > 1:
        _pooled_fanned_out(parts, w, bias, relu, out, rows)
        return out
    tmp = torch.empty(n, min(rows, b * n_pix), out_ch, dtype=out.dtype)
    for r in range(0, b * n_pix, rows):
        dst = out[:, r:r + rows]
        buf = tmp[:, :dst.shape[1]]
        torch.matmul(parts[0][:, r:r + rows], wt, out=dst)
        for part in parts[1:]:
            torch.matmul(part[:, r:r + rows], wt, out=buf)
            torch.maximum(dst, buf, out=dst)
        _bias_relu_(dst, bias, relu)
    return out


def _pool_offsets(pool: int, dims: int) -> list[list[int]]:
    """The ``pool ** dims`` offsets of a pooling window, one index per spatial axis."""
    return [[(o // pool ** d) % pool for d in range(dims)] for o in range(pool ** dims)]


def _bias_relu_(x: torch.Tensor, bias: torch.Tensor | None, relu: bool) -> None:
    """``x += bias`` then ReLU, in place (on a block that is still in cache)."""
    if bias is not None:
        x += bias
    if relu:
        x.clamp_(min=0)


def _pooled_blocks(hl: torch.Tensor, wt: torch.Tensor, bias: torch.Tensor | None, pool: int, relu: bool,
                   out: torch.Tensor, chunk_bytes: int) -> None:
    """:func:`mix_pooled`'s no-grad path for channels-last input ``hl (n, b, *spatial, k)``.

    Member by member, a few clips at a time: one matrix product of their contiguous pixel
    rows at full resolution into a cache-sized block, then the window maximum read from that
    block with strides, written into ``out (n, b * P, out)``. No gathered copy of ``h``.
    """
    n, b, *spatial, k = hl.shape
    out_ch = wt.shape[-1]
    dims = len(spatial)
    pooled = [size // pool for size in spatial]
    pix, n_pix = math.prod(spatial), math.prod(pooled)
    clips = max(1, min(b, chunk_bytes // max(1, 4 * pix * out_ch)))
    tmp = torch.empty(clips * pix, out_ch, dtype=out.dtype)
    crop = (slice(None), *[slice(0, p * pool) for p in pooled])
    offsets = _pool_offsets(pool, dims)
    flat = hl.reshape(n, b * pix, k)
    for j in range(n):
        for c in range(0, b, clips):
            m = min(clips, b - c)
            full = tmp[:m * pix]
            torch.mm(flat[j, c * pix:(c + m) * pix], wt[j], out=full)
            win = full.view(m, *spatial, out_ch)[crop]
            for d in reversed(range(dims)):                            # (m, p0, pool, p1, pool, out)
                win = win.unflatten(1 + d, (pooled[d], pool))
            dst = out[j, c * n_pix:(c + m) * n_pix].view(m, *pooled, out_ch)
            views = [win[(slice(None), *[x for p_off in off for x in (slice(None), p_off)])] for off in offsets]
            if len(views) == 1:
                dst.copy_(views[0])
            else:
                torch.maximum(views[0], views[1], out=dst)
                for v in views[2:]:
                    torch.maximum(dst, v, out=dst)
            _bias_relu_(dst, bias, relu)


def _pooled_fanned_out(parts: list[torch.Tensor], w: torch.Tensor, bias: torch.Tensor | None, relu: bool,
                       out: torch.Tensor, rows: int) -> None:
    """:func:`mix_pooled`'s no-grad loop when every member mixes the same rows (``shared``).

    All members' matrices side by side make one wide product per offset, ``(rows, k) @ (k, n *
    out)``: with few rank channels ``k`` the ``n`` narrow products of the general loop run far
    below the machine's speed. The running maximum, bias and ReLU stay in that pixel-major
    layout, in cache, and are then written member-major into ``out (n, rows_total, out)``.
    """
    n, out_ch, k = w.shape
    wide = w.permute(2, 0, 1).reshape(k, n * out_ch)                   # member-major columns
    wide_bias = None if bias is None else bias.repeat(n)
    total = out.shape[1]
    run = torch.empty(min(rows, total), n * out_ch, dtype=out.dtype)
    buf = torch.empty_like(run)
    for r in range(0, total, rows):
        m = min(rows, total - r)
        acc, nxt = run[:m], buf[:m]
        torch.mm(parts[0][0, r:r + m], wide, out=acc)
        for part in parts[1:]:
            torch.mm(part[0, r:r + m], wide, out=nxt)
            torch.maximum(acc, nxt, out=acc)
        _bias_relu_(acc, wide_bias, relu)
        out[:, r:r + m] = acc.view(m, n, out_ch).transpose(0, 1)


def fold_affine(weight: torch.Tensor, bias: torch.Tensor | None,
                affine: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold a per-output-channel ``y -> scale * y + shift`` (an eval-mode batch norm) into a
    ``(..., out, k)`` mixing matrix and its bias."""
    if affine is None:
        return weight, bias
    scale, shift = affine
    folded_bias = shift if bias is None else scale * bias + shift
    return weight * scale.unsqueeze(-1), folded_bias
