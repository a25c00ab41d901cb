"""`testbed study paper`: the grid behind the paper's Figures 4-9 and its defence claim, run
resumably on a zoo (the KWS zoo, or a scene zoo built from ``ambient:PATH``), reported as
``analysis/study-paper/report.html``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from testbed.attacks.registry import ATTACKS, attack_params
from testbed.errors import TestbedError
from testbed.models import Zoo, build_zoo
from testbed.models.robust import RobustConfig
from testbed.study.grid import ARCH_ORDER, COMPRESSED, DEFENCES, FIGURES, StudySettings, paper_cells
from testbed.study.record import WeightsRecord
from testbed.study.report import write_report
from testbed.study.run import StudyRun, run_cells

#: what a scene zoo is built with (``--data ambient:PATH``), full and quick: groups of (archs,
#: variants), the first trains the fp32 models, later ones start from them (the defences are
#: LM's, as on speech, where the paper's defence claim is made)
SCENE_ZOO = {False: ((("lm", "ete", "lms"), COMPRESSED), (("lm",), DEFENCES)),
             True: ((("lm",), ("fp32", "int8")),)}
#: its training budget: the KWS zoo's step counts (thousands of batches of 64) are sized for
#: ~10^4 clips; a scene set of a few recordings has ~50 training chunks, where that is thousands
#: of epochs and hours per model on a core, so a scene zoo trains for a few hundred epochs
SCENE_TRAINING = {False: {"steps": 600, "finetune_steps": 200, "batch_size": 32},
                  True: {"steps": 60, "finetune_steps": 10, "batch_size": 16}}
#: SLR's warm-up on scenes, scaled the same way (speech: 1000 steps; here as many as fine-tuning)
SCENE_SLR_WARMUP = {False: 200, True: 10}


@dataclass
class PaperStudy:
    """The outcome of one `study paper` run: the run's counts, where the report is, and which
    models were not measured on the zoo's own weights."""

    run: StudyRun
    report: Path
    out_dir: Path
    zoo: Path
    #: zoo models whose weights are not those the record names (reported from the record's)
    weights_changed: list[str] = field(default_factory=list)
    #: models the record names that the zoo lacks (their stored cells are reported, none computed)
    not_in_zoo: list[str] = field(default_factory=list)
    #: models written into the zoo from the study's archived weights before computing
    restored: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**self.run.as_dict(), "report": str(self.report), "out_dir": str(self.out_dir), "zoo": str(self.zoo),
                "weights_changed": self.weights_changed, "not_in_zoo": self.not_in_zoo, "restored": self.restored}


def scene_zoo(spec: str, models_root: Path, quick: bool, progress: Callable | None = None, seed: int = 0,
              build: bool = True) -> Path:
    """The zoo of models trained on the scene data set ``spec``, under ``models_root/scenes-<hash
    of the spec>``; the models it lacks are built unless ``build`` is False."""
    root = Path(models_root) / f"scenes-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"
    if not build:
        return root
    zoo = Zoo(root)
    for i, (archs, variants) in enumerate(SCENE_ZOO[quick]):
        missing = [v for v in variants if not all(zoo.exists(f"{a}-{v}") for a in archs)]
        if missing:             # an interrupted build resumes with the variants it did not write
            build_zoo(archs, missing, data=spec, quick=quick, root=root, seed=seed, progress=progress,
                      reuse_fp32=all(zoo.exists(f"{a}-fp32") for a in archs),
                      robust_config=RobustConfig(warmup_steps=SCENE_SLR_WARMUP[quick]), **SCENE_TRAINING[quick])
    return root


def study_paper(*, models_root: Path | str, out_dir: Path | str, quick: bool = False, data: str | None = None,
                only: Sequence[str] | None = None, progress: Callable[[int, int, str], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False, executor=None, build_progress: Callable | None = None,
                report_only: bool = False, new_weights: bool = False) -> PaperStudy:
    """Run (or resume) the paper's grid and write its report.

    Parameters
    ----------
    models_root : the zoo (``ambient:PATH`` data: where the scene zoo is built).
    out_dir : the study folder (``analysis/study-paper``; ``-ambient`` for scenes); its
        ``zoo.json`` records the weights its cells were computed on and ``weights/`` keeps a
        copy of them (:class:`WeightsRecord`); models the zoo lacks are restored from there.
    quick : the smoke grid (:meth:`StudySettings.quick`): 16 clips, two bounds, short attacks.
    data : ``ambient:PATH`` for the paper's second task; default the KWS zoo's own test clips.
    only : run only these figures' cells (``fig4`` ... ``fig9``, ``defence``, ``certified``);
        the weights of every model of the grid are still checked, recorded and archived.
    report_only : compute nothing (no cell, no scene model, no restore): report what is stored,
        for the weights the record names (models absent from the zoo too), and archive those of
        them the zoo holds.
    new_weights : measure a zoo model whose weights differ from the recorded ones (its stored
        cells stay on disk but leave the report); without it such a model is an error (delete
        the zoo's model to have the recorded one restored).
    """
    settings = StudySettings.quick() if quick else StudySettings()
    root = Path(models_root)
    out = Path(out_dir)
    record = WeightsRecord(out)
    ambient = bool(data and data.startswith("ambient:"))
    if ambient:
        root = scene_zoo(data, root, quick, build=False)
        settings = replace(settings, target_label=None)        # scenes have no command to inject
    zoo = Zoo(root)
    restored = [] if report_only else record.restore(zoo)      # the exact models the cells were computed on
    if ambient and not report_only:
        scene_zoo(data, Path(models_root), quick, build_progress)   # then whatever the scene zoo still lacks
    attacks = {k: attack_params(k) for k in ATTACKS}
    cells = paper_cells(lambda m: zoo.exists(m) or m in record, attacks, settings)
    # every model of the grid, not only --only's: a run records (and archives) the whole zoo it measures
    touched = sorted({m for c in cells for m in (c.source, *c.targets)})
    if only:
        unknown = sorted(set(only) - FIGURES)
        if unknown:
            raise TestbedError(f"--only: unknown figure {', '.join(unknown)} (have: {', '.join(sorted(FIGURES))})")
        cells = [c for c in cells if c.figure in set(only)]
    in_zoo = {m: zoo.model_hash(m) for m in touched if zoo.exists(m)}
    changed = sorted(m for m, h in in_zoo.items() if record.get(m) not in (None, h))
    if report_only:
        hashes = {**in_zoo, **record.hashes(touched)}           # what the stored cells were computed on
        record.archive(zoo, [m for m, h in in_zoo.items() if record.get(m) == h])
    elif changed and not new_weights:
        raise TestbedError(f"{root}: {', '.join(changed)} hold other weights than the stored cells were computed "
                           f"on ({record.path}); delete them from the zoo to have the recorded ones restored, or "
                           f"pass --new-weights to measure these (the old cells stay stored)")
    else:
        hashes = {**record.hashes(touched), **in_zoo}
        record.update(in_zoo)
        record.archive(zoo, in_zoo)
    stop = (lambda: True) if report_only else should_stop
    run = run_cells(cells, zoo, out, data=None, progress=progress, should_stop=stop, executor=executor, hashes=hashes)
    known = set(zoo.names()) | set(touched)
    missing = [f"{a}-{v}" for a in ARCH_ORDER for v in (*COMPRESSED, *DEFENCES) if f"{a}-{v}" not in known]
    report = write_report(run, out, title=f"The paper's study{' (quick)' if quick else ''}: {data or 'speech commands'}",
                          zoo=str(root), data=data or "each model's own test split", n_clips=settings.n_clips,
                          missing=missing, planned=[c.as_dict() for c in cells])
    return PaperStudy(run=run, report=report, out_dir=out, zoo=root, weights_changed=changed,
                      not_in_zoo=sorted(set(touched) - set(in_zoo)), restored=restored)
