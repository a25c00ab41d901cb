"""NES: black-box, score-only attack with antithetic natural-evolution gradient estimates."""

from __future__ import annotations

import torch

from testbed.attacks.base import Attack, _positive_int, logit_margin
from testbed.attacks.bounds import Alpha, Annotated, Count, Range, Steps
from testbed.errors import AttackError


class NES(Attack):
    """Natural Evolution Strategies (Ilyas et al. 2018), L-infinity, score-only access.

    Each iteration estimates the gradient of the loss from ``population`` queries of the
    model's class probabilities at ``delta + sigma * u`` (Gaussian ``u``, antithetic pairs
    ``+u, -u``), then takes a signed step of size ``alpha`` and projects on the eps ball.
    The loss is ``-log p(y)`` (untargeted) or ``log p(target)`` (targeted), both ascended.
    The model is only ever called under ``torch.no_grad`` and only its softmax is read.

    Parameters
    ----------
    model, eps, seed
        See :class:`~testbed.attacks.base.Attack`.
    iterations : int
        Gradient-estimate / step rounds (paper: 20).
    population : int
        Queries per example per iteration (paper: 64); even when ``antithetic``.
    sigma : float
        Standard deviation of the search distribution, PCM scale (paper: 0.001).
    alpha : float or None
        Step size; default ``2.5 * eps / iterations``.
    antithetic : bool
        Evaluate ``+u`` and ``-u`` pairs (lower-variance estimates).
    max_queries : int or None
        Query budget per example; iterations stop before it would be exceeded.
    early_stop : bool
        Stop querying a clip once it is fooled (Ilyas et al.'s query-limited setting): before
        the first iteration and after each step, one query per clip (``eot_samples`` against a
        stochastic model) reads whether ``x + delta`` is already wrong (untargeted) or the target
        (targeted); fooled clips keep that perturbation, and the checks count as queries. A clip
        the model already gets wrong costs one query. Without it every clip runs every iteration
        and returns its last iterate, which may no longer fool the model.
    batch_size : int
        Model inputs per forward call (memory bound).

    Attributes
    ----------
    queries : int
        Single-example model evaluations spent (all examples, all calls).
    clip_queries : list[int]
        Queries per clip, in order, of every run (as :attr:`Square.clip_queries`).

    Example
    -------
    >>> atk = NES(model, eps=0.005, iterations=20, population=64, seed=1)
    >>> x_adv = atk(x, y); atk.queries / len(x)
    1280.0
    """

    name = "nes"
    needs_gradients = False

    def __init__(self, model, eps: float, *, iterations: Steps = 20,
                 population: Annotated[int, Range(2, 100_000, integer=True)] = 64,
                 sigma: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 1e-3, alpha: Alpha = None,
                 antithetic: bool = True,
                 max_queries: Annotated[int | None, Range(1, 10**10, integer=True)] = None,
                 early_stop: bool = False, batch_size: Count = 512, **common) -> None:
        common.setdefault("eot_samples", 1)
        super().__init__(model, eps, **common)
        self.iterations = _positive_int(self.name, "iterations", iterations)
        self.population = _positive_int(self.name, "population", population)
        self.antithetic = bool(antithetic)
        if self.antithetic and self.population % 2:
            raise AttackError(f"{self.name}: population must be even with antithetic sampling, got {population}")
        self.sigma = float(sigma)
        if not self.sigma > 0:
            raise AttackError(f"{self.name}: sigma must be > 0, got {sigma}")
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.iterations
        if not self.alpha > 0:
            raise AttackError(f"{self.name}: alpha must be > 0, got {alpha}")
        self.early_stop = bool(early_stop)
        if max_queries is not None:
            max_queries = _positive_int(self.name, "max_queries", max_queries)
            if max_queries < self.population + 2 * self._check_cost:
                raise AttackError(f"{self.name}: max_queries {max_queries} is below one population "
                                  f"({self.population}{' plus two success checks' if self.early_stop else ''}); "
                                  "raise it or lower population")
        self.max_queries = max_queries
        self.batch_size = _positive_int(self.name, "batch_size", batch_size)
        self.clip_queries: list[int] = []

    @property
    def rounds(self) -> int:
        """Iterations that fit the query budget."""
        if self.max_queries is None:
            return self.iterations
        c = self._check_cost
        return min(self.iterations, (self.max_queries - c) // (self.population + c))

    @property
    def _check_cost(self) -> int:
        """Queries per clip of one success check (0 without ``early_stop``)."""
        return self.eot_samples if self.early_stop else 0

    @torch.no_grad()
    def scores(self, x_in: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, n_labels) for model inputs (N, S); counts N queries."""
        out = []
        for i in range(0, x_in.shape[0], self.batch_size):
            out.append(torch.softmax(self.model(x_in[i:i + self.batch_size]), dim=-1))
        self.queries += x_in.shape[0]
        return torch.cat(out)

    def score_loss(self, probs: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Loss to ascend from probabilities (N, n_labels) and labels (N,), shape (N,): the
        log-probability of the label, or with ``loss="margin"`` the log-probability margin."""
        idx = y if target is None else target
        if self.loss == "margin":
            margin = logit_margin(torch.log(probs.clamp_min(1e-12)), idx)
            return margin if target is None else -margin
        logp = torch.log(probs.gather(1, idx.unsqueeze(1)).squeeze(1).clamp_min(1e-12))
        return -logp if target is None else logp

    def estimate_gradient(self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor,
                          target: torch.Tensor | None) -> torch.Tensor:
        """NES gradient estimate (B, S) from ``population`` score queries per example."""
        b, s = x.shape
        half = self.population // 2 if self.antithetic else self.population
        grads = torch.empty_like(x)
        per_chunk = max(1, self.batch_size // self.population)
        for i in range(0, b, per_chunk):
            xi, di = x[i:i + per_chunk], delta[i:i + per_chunk]
            n = xi.shape[0]
            u = torch.randn((n, half, s), generator=self.generator, device=x.device, dtype=x.dtype)
            if self.antithetic:
                u = torch.cat([u, -u], dim=1)
            x_in = (xi.unsqueeze(1) + di.unsqueeze(1) + self.sigma * u).clamp(-1.0, 1.0)
            yi = y[i:i + n].repeat_interleave(self.population)
            ti = None if target is None else target[i:i + n].repeat_interleave(self.population)
            f = self.score_loss(self.scores(x_in.reshape(-1, s)), yi, ti).reshape(n, self.population)
            if not self.antithetic:
                f = f - f.mean(dim=1, keepdim=True)
            grads[i:i + n] = torch.einsum("np,nps->ns", f, u) / (self.population * self.sigma)
        return grads

    @torch.no_grad()
    def success(self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None) -> torch.Tensor:
        """Whether ``x + delta`` fools the model (B,), from the mean probabilities of
        ``eot_samples`` queries per clip (counted in :attr:`queries`)."""
        probs = sum(self.scores(x + delta) for _ in range(self.eot_samples)) / self.eot_samples
        return self.fooled(probs, y, target)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        delta = torch.zeros_like(x)
        # without early_stop every clip stays active and no check is spent
        active = ~self.success(x, delta, y, target) if self.early_stop else torch.ones_like(y, dtype=torch.bool)
        used = torch.full((x.shape[0],), self._check_cost, dtype=torch.int64)
        for _ in range(self.rounds):
            rows = active.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            xa, ya, ta = x[rows], y[rows], None if target is None else target[rows]
            g = self.estimate_gradient(xa, delta[rows], ya, ta)
            delta[rows] = self.project(xa, delta[rows] + self.alpha * g.sign())
            if self.early_stop:
                active[rows] = ~self.success(xa, delta[rows], ya, ta)
            used[rows.cpu()] += self.population + self._check_cost
        self.clip_queries.extend(used.tolist())
        return delta
