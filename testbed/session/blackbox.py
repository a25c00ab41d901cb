"""Black-box attacks with the DUT in the loop: every query a played, captured and stored trial.

A plan attack with ``params.oracle = "dut"`` (``kind = "nes"``, ``over_the_air = true``:
registry kind ``ota-nes``) is not crafted offline. The runner runs it against the session's DUT:
each candidate perturbation the attack asks about is played on the adversary speaker while the
user speaker plays the command, every mic is recorded, and the DUT's answer for its mic (the
serial DUT's reported label and scores, or the first evaluation model's on a host DUT) is the
query's answer. Each query is a trial of the session, committed like any other, under the attack
id ``<attack id>-queries`` with ``repetition`` = the query's index, so the query history can be
replayed and analysed. The attack's final perturbation is then stored as the perturbation of
``<attack id>``, whose ordinary trials play it at every planned delay and placement.

The number of query trials is fixed when the session is planned (``planned_queries``: rounds x
population x eot_samples, within ``max_queries``); they belong to the plan's first placement,
where the adversary first stands. A resumed run re-runs the seeded attack and answers the queries
already committed from the store (replay), playing only the ones that are missing.
"""

from __future__ import annotations

import json

import numpy as np

from testbed.errors import SessionError
from testbed.session.crafting import CraftJob, _stable_int, craft_params, craft_request
from testbed.session.perturbations import perturbation_path
from testbed.session.trial import TrialInput, run_trial
from testbed.session.trials import QUERIES_SUFFIX, TrialSpec, in_the_loop, is_query_config

__all__ = ["BlackBoxLoop", "LoopOracle"]

class _Stopped(Exception):
    """The operator asked to stop between two queries."""


class LoopOracle:
    """A :class:`~testbed.attacks.oracles.QueryOracle` whose every query is a trial of the session.

    Parameters
    ----------
    runner : the :class:`~testbed.session.runner.Runner` (store, rig, DUT, commit path).
    backend, ctx, stats : the open backend, the trial context and the run's figures.
    utterance_id : the command attacked (row 0 of the attack's batch).
    specs : its query trials, in query order.
    labels : the attack's labels (the source model's), to map the DUT's answer.
    """

    def __init__(self, runner, backend, ctx, stats, utterance_id: str, specs: list[TrialSpec],
                 labels: list[str]) -> None:
        self.runner, self.backend, self.ctx, self.stats = runner, backend, ctx, stats
        self.utterance_id = utterance_id
        self.specs = specs
        self.labels = list(labels)
        self.queries = 0
        self.played = 0
        self.replayed = 0

    # -- the two questions -------------------------------------------------------------
    def top(self, x, delta, rows):
        import torch

        from testbed.attacks.oracles import NO_ANSWER, OTHER_LABEL

        answers = [self._answer(d) for d in delta]
        return torch.tensor([NO_ANSWER if p is None else self.labels.index(p) if p in self.labels else OTHER_LABEL
                             for p, _ in answers], dtype=torch.int64)

    def scores(self, x, delta, rows):
        import torch

        out = np.zeros((delta.shape[0], len(self.labels)), dtype=np.float32)
        for i, d in enumerate(delta):
            _, scores = self._answer(d)
            row = np.array([float(scores.get(lab, 0.0)) for lab in self.labels], dtype=np.float32)
            out[i] = row / row.sum() if row.sum() > 0 else 1.0 / len(self.labels)
        return torch.from_numpy(out)

    # -- one query ----------------------------------------------------------------------
    def _answer(self, delta) -> tuple[str | None, dict]:
        if self.queries >= len(self.specs):
            raise SessionError(f"{self.runner.store.path}: the attack asked more queries of "
                               f"{self.utterance_id} than the {len(self.specs)} planned")
        spec = self.specs[self.queries]
        self.queries += 1
        store = self.runner.store
        if store.is_committed(spec.trial_id):
            self.replayed += 1
            return self._stored(spec.trial_id)
        if self.runner.should_stop():
            raise _Stopped()
        sig = np.asarray(delta.detach().cpu().numpy(), dtype=np.float32)
        trial = TrialInput(spec, self.runner.perturbations.utterance(spec.utterance_id), sig)
        rec = run_trial(trial, self.ctx, self.backend, self.runner.dut)
        rec.facts["blackbox_query"] = {"attack": spec.attack_id, "index": spec.repetition}
        self.runner._commit(rec, spec, self.stats)
        self.played += 1
        return self._pick([(e.mic, e.model, e.eval_source, e.prediction, e.scores) for e in rec.evaluations])

    def _stored(self, trial_id: int) -> tuple[str | None, dict]:
        rows = self.runner.store.db.execute(
            "SELECT mic, model, eval_source, prediction, scores FROM evaluations WHERE trial_id = ?",
            (trial_id,)).fetchall()
        return self._pick([(m, mod, src, p, json.loads(s or "{}")) for m, mod, src, p, s in rows])

    def _pick(self, evals: list[tuple]) -> tuple[str | None, dict]:
        """The DUT's answer among a trial's evaluations: the serial DUT's, else the first
        evaluation model's on the DUT mic."""
        mic = self.runner.rig.dut.mic
        if self.runner.dut is not None:
            want = [e for e in evals if e[0] == mic and e[2] == "serial"]
        else:
            model = self.runner.eval_models[0]
            want = [e for e in evals if e[0] == mic and e[1] == model and e[2] == "live"]
        if not want:
            return None, {}
        return want[0][3], dict(want[0][4] or {})


class BlackBoxLoop:
    """Runs every in-the-loop attack a run needs; see the module docstring."""

    def __init__(self, runner, backend, ctx, stats) -> None:
        self.runner, self.backend, self.ctx, self.stats = runner, backend, ctx, stats

    @staticmethod
    def query_trials(runner, pending: list[TrialSpec]) -> list[TrialSpec]:
        """The query trials among ``pending``."""
        return [t for t in pending if is_query_config(runner.attacks[t.attack_id])]

    @staticmethod
    def needed(runner, pending: list[TrialSpec]) -> list[tuple[str, str]]:
        """``(attack_id, utterance_id)`` pairs whose attack must (re-)run: a query trial pending,
        or a final perturbation missing that a pending trial plays."""
        out: list[tuple[str, str]] = []
        for t in pending:
            cfg = runner.attacks[t.attack_id]
            if not in_the_loop(cfg):
                continue
            query = is_query_config(cfg)
            aid = t.attack_id[: -len(QUERIES_SUFFIX)] if query else t.attack_id
            if query or not (runner.store.path / perturbation_path(t.utterance_id, aid)).is_file():
                if (aid, t.utterance_id) not in out:
                    out.append((aid, t.utterance_id))
        return out

    def run(self, pending: list[TrialSpec]) -> bool:
        """Run the attacks ``pending`` needs; False when the operator stopped the run."""
        todo = self.needed(self.runner, pending)
        if not todo:
            return True
        planned = self.runner.store.planned()
        for aid, uid in todo:
            specs = sorted((t for t in planned if t.attack_id == aid + QUERIES_SUFFIX and t.utterance_id == uid),
                           key=lambda t: t.repetition)
            try:
                delta = self.attack(aid, uid, specs)
            except _Stopped:
                return False
            self.runner.store.write_cached(perturbation_path(uid, aid), delta, self.runner.sr)
        return True

    def attack(self, aid: str, uid: str, specs: list[TrialSpec]) -> np.ndarray:
        """Run attack ``aid`` on utterance ``uid`` through its query trials ``specs``; the final
        perturbation, float32 (n_samples,)."""
        import torch

        from testbed.session.deps import make_attack

        r = self.runner
        cfg = r.attacks[aid]
        src = r.models.load(cfg.source_model)
        p = craft_params(cfg, r.rig, r.plan, r.models.model_hash(cfg.source_model))
        label = specs[0].label if specs else next(t.label for t in r.store.planned() if t.utterance_id == uid)
        job = CraftJob(aid, [(uid, label)], [uid], _stable_int(r.plan.seed, aid, uid))
        req = craft_request(p, job, [r.perturbations.utterance(uid)], src.labels, src.clip_samples)
        attack = make_attack(req.kind, src.module, req.eps, **req.params)
        oracle = LoopOracle(r, self.backend, self.ctx, self.stats, uid, specs, src.labels)
        attack.bind(oracle)
        target = torch.from_numpy(req.target) if req.target is not None else None
        delta = attack.perturb(torch.from_numpy(req.x), torch.from_numpy(req.y), target)
        if oracle.queries != len(specs):
            raise SessionError(f"{r.store.path}: attack {aid} on {uid} asked {oracle.queries} queries, "
                               f"{len(specs)} were planned")
        r.store.event("blackbox", f"{aid} on {uid}: {oracle.played} queries played, "
                                  f"{oracle.replayed} answered from the store")
        return delta[0].detach().cpu().numpy().astype(np.float32)
