"""Studies: resumable grids of cells (one attack on one model at one bound, on fixed clips)
reported against the paper's claims.

Typical use::

    result = study_paper(models_root="models", out_dir="analysis/study-paper", quick=True)
    print(result.report)
"""

from testbed.study.cells import Cell, compute_cell
from testbed.study.grid import StudySettings, paper_cells
from testbed.study.paper import PaperStudy, study_paper
from testbed.study.run import CellStore, StudyRun, run_cells

__all__ = ["Cell", "CellStore", "PaperStudy", "StudyRun", "StudySettings", "compute_cell", "paper_cells",
           "run_cells", "study_paper"]
