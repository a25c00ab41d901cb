"""Analysis of recorded sessions: metrics with Wilson intervals, paired mic tests, plots, reports.

Reads only the session store (``testbed.session.load_evaluations`` / ``load_session_meta``).
"""

from testbed.analysis.compare import all_mic_pairs, compare_mics, paired_errors
from testbed.analysis.dimensions import (
    ALIASES, DIMENSIONS, bits_of, ensemble_size_of, resolve_dimensions, with_dimensions,
)
from testbed.analysis.findings import findings
from testbed.analysis.load import Sessions, known_sessions, load_sessions, resolve_session, sessions_root
from testbed.analysis.metrics import RATE_COLUMNS, clean_accuracy, fmt_rate, rate_table
from testbed.analysis.report import Report, analysis_root, build_report, report_dir
from testbed.analysis.stats import McNemarResult, mcnemar, wilson_interval

__all__ = [
    "ALIASES", "DIMENSIONS", "RATE_COLUMNS",
    "McNemarResult", "Report", "Sessions",
    "all_mic_pairs", "analysis_root", "bits_of", "build_report", "clean_accuracy", "compare_mics",
    "ensemble_size_of", "findings", "fmt_rate", "known_sessions", "load_sessions", "mcnemar",
    "paired_errors", "rate_table", "report_dir", "resolve_dimensions", "resolve_session",
    "sessions_root", "wilson_interval", "with_dimensions",
]
