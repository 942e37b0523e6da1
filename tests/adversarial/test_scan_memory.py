"""A tiny file that decodes huge costs a worker no more than the scan's decode budget.

A 9000 x 9000 single-colour PNG (81 million pixels, under Pillow's own limit)
took 1.6 GB per worker to decode and convert; the scan now reports it as too
large to inspect without decoding it, and a worker's peak memory stays low.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.adversarial.scan_inputs import write_flat_png
from tests.conftest import make_image

REPO = Path(__file__).resolve().parents[2]
#: Scans a dataset with 2 worker processes and prints the summary's unreadable files and the
#: largest peak resident memory of a worker, in KiB (Linux reports ru_maxrss in KiB).
SCAN_AND_MEASURE = """
import json, resource, sys
import core.scan.inspect
from db.engine import make_engine, make_session_factory
from jobs.scan import scan_dataset

core.scan.inspect.MIN_FILES_FOR_POOL = 0
summary = scan_dataset(make_session_factory(make_engine(sys.argv[2])), sys.argv[1], workers=2)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"unreadable": summary["unreadable"], "worker_peak_kib": peak_kib}))
"""
WORKER_LIMIT_MIB = 500


def test_a_huge_flat_png_is_refused_and_the_worker_stays_small(tmp_path, db_path):
    write_flat_png(tmp_path / "shop" / "shoes" / "huge.png", 9000, 9000)
    make_image(tmp_path / "shop" / "shoes" / "fine.png")
    result = subprocess.run([sys.executable, "-c", SCAN_AND_MEASURE, str(tmp_path / "shop"), str(db_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["unreadable"] == [{
        "path": "shoes/huge.png",
        "reason": "image too large to inspect: 9000 x 9000 pixels (81.0 million) is more than the 40.0 million "
                  "pixels the scan decodes for a PNG image",
    }]
    assert measured["worker_peak_kib"] / 1024 < WORKER_LIMIT_MIB
