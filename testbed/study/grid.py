"""The grid behind the paper's Figures 4-9 and its defence claim, as a list of cells.

Cells are ordered LM first (then ETE, then LMS), and within an architecture figure by figure,
so an interrupted study has the most-cited architecture's figures complete first. Only models
in the zoo get cells; the report marks the rest of the grid as missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.study.cells import Cell

ARCH_ORDER = ("lm", "ete", "lms")
COMPRESSED = ("fp32", "lowrank", "int16", "int8", "int4")
BIT_DEPTHS = ("fp32", "int16", "int8", "int4")
#: the paper's three baselines (its section 4.3: adversarial augmentation, distillation, RSE)
BASELINES = ("advtrain", "distill", "rse")
DEFENCES = ("slr8", *BASELINES, "smooth")
STOCHASTIC = ("slr", "rse", "smooth")
FIGURES = frozenset({"fig4", "fig5", "fig6", "fig7", "fig8", "defence", "certified"})  # Fig 9 reads Fig 4's cells


@dataclass(frozen=True)
class StudySettings:
    """The grid's sizes: bounds, attacks, delays, ensemble sizes and each attack's budget.

    ``quick()`` is the smoke-test grid (a few clips, two bounds, short attacks) that a test runs
    on a tiny zoo in minutes; the default is the paper's grid with 200 clips per cell.
    """

    n_clips: int = 200
    eps: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.05)
    whitebox: tuple[str, ...] = ("fgsm", "pgd", "apgd")
    blackbox: tuple[str, ...] = ("nes", "square")
    delays_ms: tuple[float, ...] = (0.0, 100.0, 250.0, 500.0)
    delay_eps: tuple[float, ...] = (0.01, 0.05)
    transfer_eps: float = 0.05
    bit_eps: float = 0.001
    members: tuple[int, ...] = (1, 2, 4, 8, 16)
    defence_eps: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005)
    target_label: str | None = "go"
    eot_samples: int = 8
    certify: Mapping[str, Any] = field(default_factory=lambda: {"n0": 100, "n": 1000, "alpha": 0.001})
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {
        "pgd": {"steps": 20}, "apgd": {"steps": 20},
        "nes": {"iterations": 20, "population": 64, "sigma": 0.001, "early_stop": True},
        "square": {"n_queries": 1000},
    })

    @classmethod
    def quick(cls) -> "StudySettings":
        return cls(n_clips=16, eps=(0.001, 0.01), delays_ms=(0.0, 250.0), delay_eps=(0.01,),
                   transfer_eps=0.01, members=(1, 4), defence_eps=(0.001,), eot_samples=2,
                   certify={"n0": 10, "n": 50, "alpha": 0.01},
                   params={"pgd": {"steps": 5}, "apgd": {"steps": 5},
                           "nes": {"iterations": 3, "population": 8, "sigma": 0.001, "early_stop": True},
                           "square": {"n_queries": 40}})


def _stochastic(name: str) -> bool:
    variant = name.split("-", 1)[-1].split("@", 1)[0]
    return variant.startswith(STOCHASTIC)


def _params(settings: StudySettings, attack: str, model: str, accepts: Callable[[str], list[str]]) -> tuple:
    """The attack's budget from ``settings``, kept to the names the attack accepts, with EOT
    draws against a stochastic model (an adaptive attack), and there ``auto`` as AutoAttack runs
    against randomised defences (``version="rand"``: APGD-CE and APGD-DLR, each with EOT)."""
    p = dict(settings.params.get(attack, {}))
    if _stochastic(model):
        p["eot_samples"] = settings.eot_samples
        p["check"] = "eot"          # auto's decisions from the draws' mean (see AutoAttack)
        p["version"] = "rand"       # AutoAttack's ensemble for randomised defences: no Square
    known = set(accepts(attack))
    return tuple(sorted((k, v) for k, v in p.items() if k in known))


def paper_cells(exists: Callable[[str], bool], attacks: Mapping[str, list[str]],
                settings: StudySettings | None = None) -> list[Cell]:
    """Every cell of the paper's grid whose models are in the zoo.

    Parameters
    ----------
    exists : whether a zoo model (or a view ``NAME@kN``) exists.
    attacks : registered attack kind -> the parameter names it accepts (attacks the registry
        lacks are left out of the grid).
    settings : sizes; default :class:`StudySettings`.
    """
    s = settings or StudySettings()

    def accepts(kind: str) -> list[str]:
        return attacks.get(kind, [])

    white = [a for a in s.whitebox if a in attacks]
    black = [a for a in s.blackbox if a in attacks]
    delay_attacks = [a for a in ("fgsm", "pgd") if a in attacks]
    cells: list[Cell] = []

    def add(figure: str, source: str, targets: tuple[str, ...], attack: str, eps: float, **kw) -> None:
        cells.append(Cell(figure, source, targets, attack, float(eps), params=_params(s, attack, source, accepts),
                          n_clips=s.n_clips, **kw))

    fp32s = [f"{a}-fp32" for a in ARCH_ORDER if exists(f"{a}-fp32")]
    for arch in ARCH_ORDER:
        models = [f"{arch}-{v}" for v in COMPRESSED if exists(f"{arch}-{v}")]
        for m in models:                                        # Fig 4 and Fig 9: white-box
            for attack in white:
                for eps in s.eps:
                    add("fig4", m, (m,), attack, eps)
        fp32 = f"{arch}-fp32"
        if fp32 not in models:
            continue
        for attack in black:                                    # Fig 5: black-box, (un)targeted
            for eps in s.eps:
                add("fig5", fp32, (fp32,), attack, eps)
                if s.target_label:
                    add("fig5", fp32, (fp32,), attack, eps, target_label=s.target_label)
        for attack in delay_attacks:                            # Fig 6: sync delay
            for eps in s.delay_eps:
                add("fig6", fp32, (fp32,), attack, eps, delays_ms=tuple(s.delays_ms))
        for attack in delay_attacks:                            # Fig 7: across architectures
            add("fig7", fp32, tuple(fp32s), attack, s.transfer_eps)
        for k in s.members:                                     # Fig 8: ensemble size
            view = f"{arch}-slr8@k{k}"
            if exists(view) and "pgd" in attacks:
                add("fig8", view, (view,), "pgd", s.bit_eps)
        if exists(f"{arch}-smooth"):                           # the certified baseline beside SLR
            cells.append(Cell("certified", f"{arch}-smooth", (f"{arch}-smooth",), "certify", 0.0,
                              params=tuple(sorted(s.certify.items())), n_clips=s.n_clips))
        defence_attack = "auto" if "auto" in attacks else "pgd"  # SLR against the baselines
        for v in ("fp32", *DEFENCES):
            m = f"{arch}-{v}"
            if exists(m):
                for eps in s.defence_eps:
                    add("defence", m, (m,), defence_attack, eps)
    return cells
