"""``auto``: the standard ensemble run per clip, a clip robust only if every attack fails.

Like AutoAttack (Croce & Hein 2020): APGD-CE, then APGD-DLR, then Square, each run only on
the clips every earlier attack left correctly classified. Against a stochastic model the
white-box attacks are their EOT versions (every gradient averaged over ``eot_samples``
passes) and Square averages its scores the same way, and the cascade's own decisions (is this
clip already wrong? did this attack fool it?) read the mean of as many draws: one draw would
leave a clip that a lucky draw called wrong unattacked, or drop a perturbation that fools the
model on most draws because the one draw checked did not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from testbed.attacks.bounds import Annotated, Count, Range
from testbed.attacks.apgd import APGDCE, APGDDLR
from testbed.attacks.base import Attack, _positive_int
from testbed.attacks.best import Best
from testbed.attacks.square import Square
from testbed.errors import AttackError

#: the ensemble, in the order it runs
SEQUENCE: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "square")
#: AutoAttack's versions: "standard", and "rand" for randomised defences (Croce & Hein's code runs
#: only the EOT versions of APGD-CE and APGD-DLR there: a score-based search reads one noisy draw
#: per query, and averaging it costs ``eot_samples`` times Square's budget)
VERSIONS: dict[str, tuple[str, ...]] = {"standard": SEQUENCE, "rand": ("apgd-ce", "apgd-dlr")}
#: ``broken_by`` entries for clips no attack was needed for, or none could break
CLEAN, ROBUST = "clean", "robust"
#: how the cascade decides: "eot" (the mean of ``eot_samples`` draws; unbroken clips keep their best
#: candidate) or "single" (one draw, unbroken clips keep no perturbation: the behaviour before the EOT check)
CHECKS = ("eot", "single")


class AutoAttack(Attack):
    """APGD-CE, APGD-DLR and Square in cascade; per clip the first attack that fools the model.

    APGD-DLR is skipped on models with too few classes for its loss (3; targeted: 4).

    Parameters
    ----------
    model, eps, seed, gradient, bpda
        See :class:`~testbed.attacks.base.Attack`.
    steps : int
        APGD gradient evaluations per run (AutoAttack: 100).
    n_queries : int
        Square's query budget per clip (AutoAttack: 5000).
    restarts : int
        APGD runs per clip (each later one from a random start).
    eot_samples : int or None
        Passes per gradient / score against a stochastic model (default
        :data:`~testbed.attacks.base.DEFAULT_EOT_SAMPLES`; 1 for deterministic models).
    version : str
        ``"standard"`` (APGD-CE, APGD-DLR, Square) or ``"rand"`` (APGD-CE and APGD-DLR only,
        AutoAttack's version for randomised defences; see :data:`VERSIONS`).
    check : str
        ``"eot"`` (default): whether a clip is wrong is read from the mean logits of
        ``eot_samples`` draws, and against a stochastic model a clip no attack breaks keeps the
        candidate with the highest mean objective instead of no perturbation. ``"single"``: one
        draw per decision, unbroken clips unperturbed. On a deterministic model
        (``eot_samples`` 1) the two are the same.

    Attributes
    ----------
    broken_by : list[str]
        Per attacked clip, in order: ``"clean"`` (wrong before any attack), the name of the
        first attack that fooled the model, or ``"robust"`` (all failed).
    clip_queries : list[int]
        Square's queries per clip it ran on (as :attr:`Square.clip_queries`).

    Example
    -------
    >>> auto = AutoAttack(model, eps=0.002, steps=100, n_queries=1000)
    >>> x_adv = auto(x, y); collections.Counter(auto.broken_by)
    """

    name = "auto"

    def __init__(self, model, eps: float, *, steps: Annotated[int, Range(2, 100_000, integer=True)] = 100,
                 n_queries: Count = 1000, check: str = "eot", version: str = "standard", **common) -> None:
        restarts = common.pop("restarts", 1)
        common.pop("loss", None)            # each attack of the ensemble has its own objective
        super().__init__(model, eps, **common)
        self.steps = _positive_int(self.name, "steps", steps)
        self.n_queries = _positive_int(self.name, "n_queries", n_queries)
        self.apgd_restarts = _positive_int(self.name, "restarts", restarts)
        if check not in CHECKS:
            raise AttackError(f"{self.name}: check must be one of {', '.join(CHECKS)}, got {check!r}")
        self.check = check
        if version not in VERSIONS:
            raise AttackError(f"{self.name}: version must be one of {', '.join(VERSIONS)}, got {version!r}")
        self.version = version
        shared = dict(seed=self.seed, eot_samples=self.eot_samples, bpda=self.bpda,
                      gradient=self.gradient_mode if self.gradient_mode != "exact" else "ste")
        every: tuple[Attack, ...] = (
            APGDCE(model, eps, steps=self.steps, restarts=self.apgd_restarts, **shared),
            APGDDLR(model, eps, steps=self.steps, restarts=self.apgd_restarts, **shared),
            Square(model, eps, n_queries=self.n_queries, **shared))
        self.attacks = tuple(a for a in every if a.name in VERSIONS[version])
        self.broken_by: list[str] = []
        self.clip_queries: list[int] = []

    def _search(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> Best:
        delta = torch.zeros_like(x)
        value, wrong = self._decide(x, delta, y, target)
        keep = self.check == "eot" and self.eot_samples > 1     # a stochastic model: keep the best try
        label = [CLEAN if bool(w) else ROBUST for w in wrong]
        with torch.no_grad():
            n_classes = len(self.labels) or int(self.model(x[:1]).shape[-1])
        for attack in self.attacks:
            if attack.loss == "dlr" and n_classes < (3 if target is None else 4):
                continue                    # DLR needs 3 classes (targeted: 4)
            left = (~wrong).nonzero().squeeze(1)
            if left.numel() == 0:
                break
            t = None if target is None else target[left]
            before = attack.queries
            d = attack.run(x[left], y[left], t).delta          # already inside attack_mode
            self.queries += attack.queries - before
            if isinstance(attack, Square):
                self.clip_queries.extend(attack.clip_queries[-left.numel():])
            v, fooled = self._decide(x[left], d, y[left], t)
            take = fooled | (v > value[left]) if keep else fooled
            delta[left[take]], value[left[take]] = d[take], v[take]
            hit = left[fooled]
            wrong[hit] = True
            for i in hit.tolist():
                label[i] = attack.name
        self.broken_by.extend(label)
        return Best(delta)

    @torch.no_grad()
    def _decide(self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The cascade's check of ``x + delta``: the objective (B,) and whether the model is fooled (B,),
        from the mean of ``eot_samples`` draws (``check="eot"``) or from one draw."""
        return self.score(x, delta, y, target, draws=None if self.check == "eot" else 1)

    def counts(self) -> dict[str, int]:
        """How many clips each attack broke, plus ``clean`` and ``robust``, in ensemble order."""
        return broken_by_counts(self.broken_by)


def broken_by_counts(broken_by: Sequence[str]) -> dict[str, int]:
    """Clips per outcome of an ``auto`` run, every outcome listed in cascade order."""
    c = Counter(broken_by)
    return {k: int(c.get(k, 0)) for k in (CLEAN, *SEQUENCE, ROBUST)}
