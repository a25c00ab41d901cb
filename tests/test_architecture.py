"""The layering of ``testbed/`` (docs/architecture.md): import contracts and the house size limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def test_import_contracts_hold():
    """Every contract in .importlinter is kept: layers point one way, analysis reads only the
    store, no cycles between sibling modules (function-level imports count too)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout.upper()


def test_contracts_name_every_subpackage():
    """A new top-level part must be placed in a layer, or the layers contract would not see it."""
    config = (ROOT / ".importlinter").read_text()
    parts = {p.stem if p.is_file() else p.name for p in (ROOT / "testbed").iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    missing = sorted(p for p in parts if f"testbed.{p}" not in config)
    assert not missing, f"parts missing from .importlinter's layers: {missing}"


def test_no_module_over_the_house_limit():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "testbed").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split by job): {long}"
