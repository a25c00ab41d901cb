"""Fixtures for the monitor tests: a session with the office-sim rig stored, and a writer that commits
synthetic trials through the store's writer API (no models, no audio backend)."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from testbed.errors import SessionError
from testbed.session.store import CaptureRecord, EvalRecord, SessionStore, TrialRecord
from testbed.session.trials import AttackConfig, TrialSpec

SR = 16000
LABELS = ["yes", "no"]
MICS = ("ref", "phone", "cheap")
MODELS = ("lm-fp32", "lm-int8")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


def office_rig() -> dict:
    from testbed.rig import load_rig

    return load_rig(REPO / "rigs" / "office-sim.toml").model_dump(mode="json")


def make_session(folder: Path, per_label: int = 3) -> SessionStore:
    """A session of ``2 labels x per_label x 2 attacks x 2 delays x 2 placements`` planned trials."""
    attacks = [AttackConfig("none", "none", 0.0, "untargeted", None, False, {}),
               AttackConfig("fgsm-0.01-untargeted-lm-fp32", "fgsm", 0.01, "untargeted", "lm-fp32", False, {})]
    utts = [(f"{lab}-{i}", lab, np.zeros(SR // 4, np.float32), {}) for lab in LABELS for i in range(per_label)]
    combos = itertools.product(["P1", "P2"], utts, attacks, [0.0, 100.0])
    planned = [TrialSpec(i, u[0], u[1], a.attack_id, d, p, 0) for i, (p, u, a, d) in enumerate(combos)]
    meta = {"session_id": folder.name, "plan_name": "monitor-test", "rig_name": "office-sim", "sample_rate": SR,
            "dut_mic": "cheap", "rig": office_rig(),
            "plan": {"name": "monitor-test", "evaluate": {"models": list(MODELS)}}}
    return SessionStore.create(folder, meta=meta, files={}, attacks=attacks, utterances=utts, planned=planned,
                               sample_rate=SR)


def make_record(spec: TrialSpec, eps: float, rng: np.random.Generator, n: int = SR // 4) -> TrialRecord:
    """A trial whose command is a tone and whose models err more often under attack.

    ``eps`` is the attack's bound (0: no attack); levels, limiter facts and clipping look like the sim's.
    """
    t = np.arange(n) / SR
    base = 0.3 * np.sin(2 * np.pi * (300 + 200 * LABELS.index(spec.label)) * t)
    caps, evals = [], []
    for k, mic in enumerate(MICS):
        sig = (base * (0.5 + 0.2 * k) + 0.02 * rng.standard_normal(n) + eps * 20 * rng.standard_normal(n))
        sig = np.clip(sig, -1, 1).astype(np.float32)
        peak = 20 * np.log10(np.max(np.abs(sig)))
        rms = 20 * np.log10(np.sqrt(np.mean(sig.astype(np.float64) ** 2)))
        caps.append(CaptureRecord(mic=mic, signal=sig, clipped=int(np.sum(np.abs(sig) >= 1.0)),
                                  peak_dbfs=float(peak), rms_dbfs=float(rms)))
        for m in MODELS:
            wrong = rng.random() < (0.1 + 40 * eps)
            evals.append(EvalRecord(mic=mic, model=m, model_hash="h", eval_source="live",
                                    prediction=("no" if spec.label == "yes" else "yes") if wrong else spec.label,
                                    score_top=0.9))
    facts = {"record_s": n / SR, "xruns": 0, "limited": {"user": False, "adversary": eps > 0},
             "speaker_peak_dbfs": {"user": -6.0, "adversary": -12.0 if eps else -120.0},
             "speaker_rms_dbfs": {"user": -15.0, "adversary": -21.0 if eps else -120.0}}
    return TrialRecord(trial_id=spec.trial_id, captures=caps, evaluations=evals, facts=facts,
                       attempts=2 if spec.trial_id % 7 == 3 else 1, started_at=time.time())


class SyntheticWriter:
    """Commits a session's pending trials from a thread, as a run would, under the writer lock.

    ``gate`` (a semaphore) lets the test release trials one at a time; between trials the writer
    lets go of its lock and takes it again, counting every refusal in ``refused``.
    """

    def __init__(self, store: SessionStore, seed: int = 0):
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.eps = {a.attack_id: a.eps for a in store.attacks().values()}
        self.gate = threading.Semaphore(0)
        self.refused: list[str] = []
        self.committed: list[float] = []      # time.time() right after each commit
        self.error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "SyntheticWriter":
        self._thread.start()
        return self

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()

    def abandon(self) -> None:
        """Die like a killed run: let go of the lock without writing a stop event."""
        self._abandoned = True
        self.gate.release()
        self.join()

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def _relock(self) -> None:
        self.store.unlock()
        try:
            self.store.lock()
        except SessionError as exc:
            self.refused.append(str(exc))
            raise

    def _run(self) -> None:
        try:
            self.store.lock()
            self.store.event("started", "synthetic writer")
            for spec in self.store.pending():
                if not self.gate.acquire(timeout=300) or self._abandoned:
                    return
                for _ in range(5):
                    self._relock()
                self.store.commit_trial(make_record(spec, self.eps[spec.attack_id], self.rng), SR)
                self.committed.append(time.time())
            self.store.event("finished", "synthetic writer: every trial committed")
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        finally:
            self.store.unlock()


@pytest.fixture
def session_store(tmp_path) -> SessionStore:
    store = make_session(tmp_path / "sessions" / "mon")
    yield store
    store.close()


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (the system's), driven by playwright."""
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is required for the monitor tests: apt-get install chromium"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


class OfflinePage:
    """A browser page whose every request not to 127.0.0.1 is refused, and recorded."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1800})
        self.page = self.context.new_page()
        self.local: list[str] = []
        self.blocked: list[str] = []
        self.navigations = 0
        self.context.route("**/*", self._route)
        self.page.on("framenavigated", lambda f: setattr(self, "navigations", self.navigations + 1)
                     if f == self.page.main_frame else None)

    def _route(self, route) -> None:
        from urllib.parse import urlsplit

        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            self.local.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline_page(browser):
    p = OfflinePage(browser)
    yield p
    p.close()
