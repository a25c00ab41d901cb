"""Attack benchmark: our PGD's wall time over torchattacks' PGD with identical settings.

Both run the same number of steps with the same step size on the same LM model and inputs
(torchattacks sees the model on [0, 1]: ``u -> model(2u - 1)``, with eps and alpha halved,
which is the same attack). Key: ``pgd_time_ratio_vs_torchattacks`` (target <= 1.0).
"""

from __future__ import annotations

import time


def _unit_range(model):
    """``model`` seen on torchattacks' [0, 1] range: ``u -> model(2u - 1)``."""
    import torch

    class UnitRange(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, u):
            return self.inner(2.0 * u - 1.0)

    return UnitRange(model).eval()


def run(quick: bool = False) -> dict:
    """Time PGD (ours vs torchattacks) on an LM model; best of ``repeats`` runs each.

    Returns
    -------
    dict with ``pgd_time_ratio_vs_torchattacks`` (ours / theirs, lower is better), both
    times in seconds, the settings, and both error rates on the same inputs.
    """
    import numpy as np
    import torch

    from testbed.attacks import PGD
    from testbed.errors import TestbedError
    from testbed.models import build_model

    try:
        import torchattacks
    except ImportError:
        raise TestbedError("bench attacks: needs torchattacks (pip install -e '.[test]')") from None

    batch, steps, repeats = (8, 5, 2) if quick else (32, 20, 3)
    eps = 0.005
    alpha = 2.5 * eps / steps
    torch.manual_seed(0)
    model = build_model("lm", [f"c{i}" for i in range(12)]).eval()
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    x = torch.from_numpy((0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000, (batch, 1)) * t)
                          + 0.05 * rng.standard_normal((batch, 16000))).astype(np.float32))
    with torch.no_grad():
        y = model(x).argmax(1)

    ours_attack = PGD(model, eps=eps, steps=steps, alpha=alpha, seed=0)
    theirs_attack = torchattacks.PGD(_unit_range(model), eps=eps / 2, alpha=alpha / 2, steps=steps,
                                     random_start=True)

    def best(fn):
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    best(lambda: ours_attack(x[:2], y[:2]))        # warm-up (allocator, lazy init)
    ours_s, x_ours = best(lambda: ours_attack(x, y))
    theirs_s, u_theirs = best(lambda: theirs_attack((x + 1) / 2, y))
    with torch.no_grad():
        err_ours = float((model(x_ours).argmax(1) != y).float().mean())
        err_theirs = float((model(2 * u_theirs - 1).argmax(1) != y).float().mean())
    return {
        "pgd_time_ratio_vs_torchattacks": round(ours_s / theirs_s, 3),
        "pgd_ours_s": round(ours_s, 3), "pgd_torchattacks_s": round(theirs_s, 3),
        "batch": batch, "steps": steps, "eps": eps, "model": "lm (untrained, 12 classes)",
        "error_rate_ours": err_ours, "error_rate_torchattacks": err_theirs,
        "threads": torch.get_num_threads(),
    }
