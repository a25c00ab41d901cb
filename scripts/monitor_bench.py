"""Measure the live monitor (latency after a commit, the run's throughput with the page open) and
save the README's screenshot: ``python scripts/monitor_bench.py [--quick] [--screenshot docs/figures/monitor.png]``.

The figures are those of ``testbed bench --only monitor`` (see testbed/bench/monitor.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from testbed.bench.monitor import measure

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="80 trials instead of 400")
    ap.add_argument("--client", choices=["chromium", "sse"], default="chromium",
                    help="what follows the monitor in the cost blocks (sse: curl on the event stream)")
    ap.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the page at the end")
    args = ap.parse_args()
    kw = {"per_label": 2, "latency_trials": 20} if args.quick else {}
    print(json.dumps(measure(screenshot=args.screenshot, client=args.client, **kw), indent=2))
