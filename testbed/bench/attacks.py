"""Attack benchmark: our PGD and APGD against torchattacks' with identical settings.

Both run the same number of steps with the same step size on the same LM model and inputs
(torchattacks sees the model on [0, 1]: ``u -> model(2u - 1)``, with eps and alpha halved,
which is the same attack). Keys: ``pgd_time_ratio_vs_torchattacks`` and
``apgd_time_ratio_vs_torchattacks`` (target <= 1.0, same or higher error rate). APGD runs
the same number of gradient evaluations on both sides (torchattacks' ``steps`` counts the
updates after the first gradient, ours the gradients).
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
            # (B, 1, 1, S) "images" for attacks that assume 4-D inputs (torchattacks' APGD)
            return self.inner(2.0 * u.reshape(u.shape[0], -1) - 1.0)

    return UnitRange(model).eval()


def _model_and_clips(batch: int, quick: bool):
    """``(model, x (batch, S), y (batch,), eps, description)``: the default zoo's ``lm-fp32`` on
    the first ``batch`` of its seeded test clips that it classifies correctly (true labels) at eps
    0.0002 when that model is built and ``quick`` is off, so the two attacks' error rates mean
    something (a bound where neither breaks every clip: PGD-20 at 0.0005 already errs on ~90 % of
    the zoo's test clips); else an untrained LM on seeded tones in noise at eps 0.005, labelled
    with its own predictions (every attacked clip then counts as an error, and the bench compares
    time only).

    Only clips the model gets right: torchattacks' APGD, like AutoAttack, attacks only those and
    returns the others untouched, so on a mixed batch it does less work than an attack that runs
    on every clip (our APGD and PGD, and torchattacks' PGD); on these both sides do the same."""
    import numpy as np
    import torch

    from testbed.models import Zoo, build_model, held_out_clips

    zoo = Zoo()
    if not quick and zoo.exists("lm-fp32"):
        model = zoo.load("lm-fp32").eval()
        x, y, spec = held_out_clips(zoo.card("lm-fp32"), None, 4 * batch, seed=0)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        with torch.no_grad():
            right = (model(x).argmax(1) == y).nonzero().squeeze(1)[:batch]
        return (model, x[right], y[right], 0.0002,
                f"lm-fp32 of the zoo at {zoo.root} ({len(right)} seeded test clips of {spec} that it classifies "
                f"correctly, true labels)")
    torch.manual_seed(0)
    model = build_model("lm", [f"c{i}" for i in range(12)]).eval()
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    x = torch.from_numpy((0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000, (batch, 1)) * t)
                          + 0.05 * rng.standard_normal((batch, 16000))).astype(np.float32))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, 0.005, "lm (untrained, 12 classes; labels = its own predictions: time only)"


def run(quick: bool = False) -> dict:
    """Time PGD (ours vs torchattacks) on an LM model; best of ``repeats`` runs each.

    Returns
    -------
    dict with ``pgd_time_ratio_vs_torchattacks`` (ours / theirs, lower is better), both
    times in seconds, the settings, and both error rates on the same inputs (``model`` says
    which model and clips: see :func:`_model_and_clips`).
    """
    import torch

    from testbed.attacks import APGD, PGD
    from testbed.errors import TestbedError

    try:
        import torchattacks
    except ImportError:
        raise TestbedError("bench attacks: needs torchattacks (pip install -e '.[test]')") from None

    batch, steps, repeats = (8, 5, 2) if quick else (32, 20, 3)
    model, x, y, eps, described = _model_and_clips(batch, quick)
    alpha = 2.5 * eps / steps
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

    apgd_ours = APGD(model, eps=eps, steps=steps + 1, loss="ce", seed=0)
    apgd_theirs = torchattacks.APGD(_unit_range(model), norm="Linf", eps=eps / 2, steps=steps, n_restarts=1,
                                    loss="ce", seed=0)
    best(lambda: apgd_ours(x[:2], y[:2]))
    apgd_ours_s, xa_ours = best(lambda: apgd_ours(x, y))
    apgd_theirs_s, ua_theirs = best(lambda: apgd_theirs(((x + 1) / 2).reshape(x.shape[0], 1, 1, -1), y))
    ua_theirs = ua_theirs.reshape(x.shape)
    with torch.no_grad():
        aerr_ours = float((model(xa_ours).argmax(1) != y).float().mean())
        aerr_theirs = float((model(2 * ua_theirs - 1).argmax(1) != y).float().mean())
    return {
        "apgd_time_ratio_vs_torchattacks": round(apgd_ours_s / apgd_theirs_s, 3),
        "apgd_ours_s": round(apgd_ours_s, 3), "apgd_torchattacks_s": round(apgd_theirs_s, 3),
        "apgd_error_rate_ours": aerr_ours, "apgd_error_rate_torchattacks": aerr_theirs,
        "apgd_gradients": steps + 1,
        "pgd_time_ratio_vs_torchattacks": round(ours_s / theirs_s, 3),
        "pgd_ours_s": round(ours_s, 3), "pgd_torchattacks_s": round(theirs_s, 3),
        "batch": batch, "steps": steps, "eps": eps, "model": described,
        "error_rate_ours": err_ours, "error_rate_torchattacks": err_theirs,
        "threads": torch.get_num_threads(),
    }
