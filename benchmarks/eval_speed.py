"""How fast is ``famipose eval`` at PoseTrack scale, end to end? (not a test)

Generates the PoseTrack18-val-sized speed case of ``shared/poseval_cases/make_cases.py --set large``
(170 sequences, about 16,000 frames, 75,000 GT and 158,000 predicted persons, 150 MB of JSON) if it
is missing, then runs ``famipose eval --dataset posetrack18 --gt … --pred … --json`` with default
options (COCO AP included) in a fresh process, ``--repeat`` times. It prints each run's stage times
(from the report's ``provenance.timings``), the wall time of the whole process, its peak RSS, and
the scores, so a run can be compared with a previous one. The reference is the official poseval:
207 s and 2.9 GB on a case of this size on a 2-core machine (``shared/poseval_cases/README.md``);
the ratio printed is against that figure.

    python benchmarks/eval_speed.py [--case DIR] [--shared ../shared] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POSEVAL_SECONDS = 207.0  # the official poseval on this case's size, 2-core machine (shared README)
POSEVAL_RSS_GB = 2.9
SCORES = (
    "ap",
    "ap_per_joint",
    "precision_per_joint",
    "recall_per_joint",
    "mota",
    "mota_per_joint",
    "motp_per_joint",
    "mot_precision_per_joint",
    "mot_recall_per_joint",
    "mot_totals",
    "coco",
)


def ensure_case(case: Path, shared: Path) -> Path:
    """``case/large/{gt,pred}``, generated with the shared generator when missing."""
    folder = case / "large"
    if not (folder / "gt").is_dir():
        script = shared / "poseval_cases" / "make_cases.py"
        if not script.is_file():
            sys.exit(f"{script} not found: pass --shared (the shared/ folder) or --case with a generated case")
        print(f"generating the large case in {case} (about a minute)", file=sys.stderr)
        subprocess.run([sys.executable, str(script), "--set", "large", "--out", str(case)], check=True)
    return folder


def run_once(folder: Path) -> dict:
    """One ``famipose eval`` in a fresh process: its report, wall time and peak RSS."""
    cmd = [
        sys.executable,
        "-m",
        "famicli",
        "eval",
        "--dataset",
        "posetrack18",
        "--gt",
        str(folder / "gt"),
        "--pred",
        str(folder / "pred"),
        "--json",
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own rusage (not earlier children's)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"famipose eval failed ({proc.returncode}):\n{stderr}")
    peak_kb = usage.ru_maxrss  # the eval process (its reading workers are forked children of it)
    report = json.loads(stdout)
    warnings = [line for line in stderr.splitlines() if line.startswith("Warning:")]
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "timings": report["provenance"]["timings"],
        "warning_lines": len(warnings),
        "warnings_in_json": len(report.get("warnings", [])),
        "report": report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--case", type=Path, default=Path("/tmp/famipose-eval-speed"), help="where the case lives")
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("FAMIPOSE_SHARED", repo.parent / "shared")))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the runs and scores here")
    args = parser.parse_args()

    folder = ensure_case(args.case, args.shared)
    runs = []
    for i in range(args.repeat):
        run = run_once(folder)
        runs.append(run)
        stages = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in run["timings"].items())
        print(
            f"run {i + 1}: {run['wall_s']:.2f} s end to end ({stages}); peak RSS {run['peak_rss_mb']:.0f} MB; "
            f"{run['warning_lines']} warning lines ({run['warnings_in_json']} in --json)"
        )
    best = min(r["wall_s"] for r in runs)
    print(
        f"best of {len(runs)}: {best:.2f} s = {POSEVAL_SECONDS / best:.0f}x the official poseval "
        f"({POSEVAL_SECONDS:.0f} s, {POSEVAL_RSS_GB} GB); load average now {os.getloadavg()[0]:.2f}"
    )
    report = runs[-1]["report"]
    scores = {k: report[k] for k in SCORES if k in report}
    print(
        json.dumps(
            {
                "ap_total": report["ap"]["Total"],
                "mota_total": report["mota"]["Total"],
                "coco_ap": (report.get("coco") or {}).get("AP"),
            }
        )
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"runs": [{k: v for k, v in r.items() if k != "report"} for r in runs], "scores": scores}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
