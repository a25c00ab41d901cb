"""Black-box attacks over the air: NES through the room, score-based or label-only.

The perturbation is sent to the adversary speaker; the DUT hears the capture at its mic and
answers through a :class:`~testbed.attacks.oracles.QueryOracle`. Every answer to one capture
is one query, counted against ``max_queries`` per example, and nothing here ever asks the
model for a gradient.

Label-only mode is NES on a 0/1 success signal: a query scores 1 when the DUT's reported top
class is not the true label (untargeted) or is the target (targeted), else 0. The objective
NES ascends is the Gaussian-smoothed expected success ``E_u E_channel [success(delta + sigma u)]``:
the search distribution and the random channel draw of every query (delay, gains, noise, path)
make this smooth in ``delta`` although each answer is binary, and ``eot_samples`` repeated
captures per candidate average the 0/1 answers into a success rate. Where every answer agrees
the estimate is zero and the step leaves ``delta`` where it is.
"""

from __future__ import annotations

import torch

from testbed.attacks.bounds import Annotated, Count, Db, DbPair, DelayPairMs, Range, Seed, Steps
from testbed.attacks.base import _positive_int
from testbed.attacks.channels import OverTheAir
from testbed.attacks.nes import NES
from testbed.attacks.oracles import NO_ANSWER, Budget, ModelOracle, QueryOracle
from testbed.attacks.ota_pgd import build_over_the_air
from testbed.errors import AttackError

#: ``oracle`` values a plan may write: the source model through the channel bank, or the
#: session's DUT in the loop (every query a played trial, see :mod:`testbed.session.blackbox`).
ORACLES: tuple[str, ...] = ("model", "dut")


class OTANES(NES):
    """NES through the over-the-air mix, with a query budget in DUT queries.

    Each iteration draws ``population`` candidates ``delta + sigma * u`` (antithetic pairs,
    clipped to the eps ball: every played query respects the bound), has each captured
    ``eot_samples`` times (each capture a fresh channel draw on the simulated oracle, a played
    trial in the loop), turns the answers into an objective and takes a signed step of ``alpha``.

    Parameters
    ----------
    model, eps, seed, loss
        See :class:`~testbed.attacks.base.Attack`. ``model`` is the source model the ``"model"``
        oracle queries (never differentiated).
    iterations, population, sigma, alpha, antithetic, batch_size
        See :class:`~testbed.attacks.nes.NES`.
    max_queries : int or None
        DUT queries per example; iterations stop before it would be exceeded (one iteration
        costs ``population * eot_samples``).
    eot_samples : int
        Captures per candidate (default 1).
    label_only : bool
        Use only the DUT's reported top class (NES on the 0/1 success signal).
    oracle : "model", "dut" or a QueryOracle
        ``"model"``: ``model`` through the channel (needs ``rig`` or ``channel``). ``"dut"``:
        the session's DUT, bound by the session runner (:meth:`bind`). An object: used as is.
    random_start : bool
        Start from uniform noise in the eps ball (helps label-only leave a region where every
        answer is the true label).
    length_samples : int or None
        Length of ``delta`` (default the command's).
    channel, rig, mics, placement, n_channels, position_jitter_m, channel_seed, delay_ms,
    gain_db, noise_db, input_gain_db
        See :class:`~testbed.attacks.ota_pgd.OTAPGD`.

    Attributes
    ----------
    queries : int
        DUT queries spent (all examples).
    used : int64 tensor (B,)
        Queries spent per example in the last :meth:`perturb`.

    Example
    -------
    >>> atk = OTANES(model, eps=0.01, rig=rig, max_queries=1000, label_only=True)
    >>> delta = atk.perturb(x, y)         # play on the adversary speaker
    """

    name = "ota-nes"
    needs_gradients = False

    def __init__(self, model, eps: float, *, iterations: Steps = 20, population: Count = 32,
                 max_queries: Annotated[int | None, Range(1, 10**9, integer=True)] = None,
                 eot_samples: Annotated[int, Range(1, 10_000, integer=True)] = 1, label_only: bool = False,
                 oracle="model", random_start: bool = False,
                 length_samples: Annotated[int | None, Range(1, 10**7, integer=True)] = None,
                 channel: OverTheAir | None = None, rig=None, mics=None, placement: str | None = None,
                 n_channels: Annotated[int, Range(1, 1024, integer=True)] = 8,
                 position_jitter_m: Annotated[float, Range(0.0, 10.0)] = 0.1, channel_seed: Seed = 0,
                 delay_ms: DelayPairMs = (0.0, 500.0), gain_db: DbPair = (-2.0, 2.0), noise_db: DbPair = (-3.0, 3.0),
                 input_gain_db: Db = 0.0, **params) -> None:
        super().__init__(model, eps, iterations=iterations, population=population,
                         eot_samples=eot_samples, **params)
        if self.early_stop:     # the session's budget bookkeeping needs a fixed cost per example
            raise AttackError(f"{self.name}: early_stop is not supported: every example spends exactly "
                              "queries_per_example queries")
        cost = self.population * self.eot_samples
        if max_queries is not None:
            max_queries = _positive_int(self.name, "max_queries", max_queries)
            if max_queries < cost:
                raise AttackError(f"{self.name}: max_queries {max_queries} is below one iteration "
                                  f"(population x eot_samples = {cost}); raise it or lower population")
        self.max_queries = max_queries
        self.label_only = bool(label_only)
        self.random_start = bool(random_start)
        self.length_samples = None if length_samples is None else _positive_int(
            self.name, "length_samples", length_samples)
        self.channel = None
        self._oracle: QueryOracle | None = None
        if isinstance(oracle, str):
            if oracle not in ORACLES:
                raise AttackError(f"{self.name}: oracle must be one of {', '.join(ORACLES)}, got {oracle!r}")
            self.oracle = oracle
            if oracle == "model":
                self.channel = build_over_the_air(
                    channel=channel, rig=rig, mics=mics, placement=placement, n_channels=n_channels,
                    position_jitter_m=position_jitter_m, channel_seed=channel_seed, delay_ms=delay_ms,
                    gain_db=gain_db, noise_db=noise_db, input_gain_db=input_gain_db, who=self.name)
                self._oracle = ModelOracle(model, self.channel, self.generator, batch_size=self.batch_size)
        else:
            if not isinstance(oracle, QueryOracle):
                raise AttackError(f"{self.name}: oracle must be 'model', 'dut' or a QueryOracle, got {oracle!r}")
            self.oracle = "custom"
            self._oracle = oracle
        self.used = torch.zeros(0, dtype=torch.int64)

    @property
    def cost_per_iteration(self) -> int:
        """DUT queries per example per iteration."""
        return self.population * self.eot_samples

    @property
    def rounds(self) -> int:
        """Iterations that fit the query budget."""
        if self.max_queries is None:
            return self.iterations
        return min(self.iterations, self.max_queries // self.cost_per_iteration)

    @property
    def queries_per_example(self) -> int:
        """Exactly the queries one example costs: ``rounds * population * eot_samples``."""
        return self.rounds * self.cost_per_iteration

    def bind(self, oracle: QueryOracle) -> "OTANES":
        """Answer queries with ``oracle`` (the session's DUT in the loop); returns self."""
        if not isinstance(oracle, QueryOracle):
            raise AttackError(f"{self.name}: cannot bind {oracle!r}: not a QueryOracle")
        self._oracle = oracle
        return self

    # -- the objective, from answers only ---------------------------------------------
    def answers(self, x: torch.Tensor, cand: torch.Tensor, rows: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None, budget: Budget) -> torch.Tensor:
        """The objective (N,) of each query: the score loss, or 0/1 success in label-only mode.

        ``x`` (N, S) commands, ``cand`` (N, L) candidates, ``rows``/``y``/``target`` (N,).
        """
        if self._oracle is None:
            raise AttackError(f"{self.name}: oracle 'dut' answers only inside a session "
                              f"(the runner binds the DUT); use oracle = 'model' offline")
        budget.spend(rows)
        before = self._oracle.queries
        if self.label_only:
            top = self._oracle.top(x, cand, rows).to(y.device)
            f = (top != y) if target is None else (top == target)
            f = (f & (top != NO_ANSWER)).to(x.dtype)   # no answer is no evidence of success
        else:
            f = self.score_loss(self._oracle.scores(x, cand, rows).to(x.device), y, target)
        self.queries += self._oracle.queries - before
        return f

    def estimate(self, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None, budget: Budget) -> torch.Tensor:
        """NES gradient estimate (B, L) of the objective, from ``cost_per_iteration`` queries per example."""
        b, length = delta.shape
        half = self.population // 2 if self.antithetic else self.population
        grads = torch.empty_like(delta)
        per_chunk = max(1, self.batch_size // self.cost_per_iteration)
        for i in range(0, b, per_chunk):
            n = min(per_chunk, b - i)
            u = torch.randn((n, half, length), generator=self.generator, device=x.device, dtype=x.dtype)
            if self.antithetic:
                u = torch.cat([u, -u], dim=1)
            cand = (delta[i:i + n].unsqueeze(1) + self.sigma * u).clamp(-self.eps, self.eps)
            e = self.eot_samples
            rows = torch.arange(i, i + n, device=x.device).repeat_interleave(self.population * e)
            flat = cand.reshape(n * self.population, length).repeat_interleave(e, dim=0)
            f = self.answers(x[rows], flat, rows, y[rows], None if target is None else target[rows], budget)
            f = f.reshape(n, self.population, e).mean(dim=2)
            if not self.antithetic:
                f = f - f.mean(dim=1, keepdim=True)
            grads[i:i + n] = torch.einsum("np,npl->nl", f, u) / (self.population * self.sigma)
        return grads

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        length = self.length_samples or x.shape[-1]
        delta = torch.zeros((x.shape[0], length), device=x.device, dtype=x.dtype)
        if self.random_start:
            delta = self.uniform_noise(delta)
        budget = Budget(self.max_queries, x.shape[0], self.name)
        with torch.no_grad():
            for _ in range(self.rounds):
                g = self.estimate(x, delta, y, target, budget)
                delta = (delta + self.alpha * g.sign()).clamp(-self.eps, self.eps)
        self.used = budget.used
        return delta

