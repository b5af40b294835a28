"""Issue 14's targets next to what this GPU check measured:
``python tools/gpu_check/targets.py <work dir> <config>``.

Reads the session's files in <work dir> (``throughput_small_projection.csv``, ``throughput_photo.csv``,
``packed.json``; each one optional) and prints one line per target. The table times are projections from measured
rates (runs x steps / run-steps per second, see ``debias.throughput.projection``), not run times: job start-up,
evaluation and checkpoints are not in them. The targets are for the full-scale config (config/config.yaml); with
another config the lines give the figures without a verdict.
"""

import csv
import json
import sys
from pathlib import Path

TABLE_MINUTES = {"colored_mnist": ("colored-MNIST table", 20), "fairface": ("FairFace sweep", 5)}
IMAGES_PER_S = 2500
WHOLE_TABLE = "(whole table)"  # debias.throughput.WHOLE_TABLE (not imported: this runs without the package too)


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def verdict(met: bool, full: bool) -> str:
    return (": meets it" if met else ": misses it") if full else ""


def table_lines(projection: list[dict], full: bool) -> list[str]:
    lines = []
    for exp, (name, limit) in TABLE_MINUTES.items():
        whole = {r["variant"]: r for r in projection if r["experiment"] == exp and r["row"] == WHOLE_TABLE}
        if not whole:
            lines.append(f"{name}: not measured (no projection of every row); target < {limit} min")
            continue
        parts = [f"{float(r['projected_hours']) * 60:.1f} min {variant}" for variant, r in whole.items()]
        best = min(float(r["projected_hours"]) * 60 for r in whole.values())
        runs = next(iter(whole.values()))["runs"]
        lines.append(f"{name} ({runs} runs): {'; '.join(parts)}; target < {limit} min{verdict(best < limit, full)} "
                     f"({next(iter(whole.values()))['device']})")
    return lines


def photo_lines(photo: list[dict], full: bool) -> list[str]:
    ok = [r for r in photo if r.get("status") == "ok" and r.get("images_per_s")]
    if not ok:
        return [f"ResNet-50 training: not measured; target >= {IMAGES_PER_S} images/s"]
    lines = []
    for r in ok:
        ips = float(r["images_per_s"])
        lines.append(f"ResNet-50 {r['experiment']}/{r['row']} ({r['variant']}, batch {r['batch_size']}): "
                     f"{ips:.0f} images/s, {float(r['peak_memory_mb'] or 0):.0f} MB; target >= {IMAGES_PER_S}"
                     f"{verdict(ips >= IMAGES_PER_S, full)}")
    return lines


def packed_lines(packed_json: Path, small: list[dict]) -> list[str]:
    if not packed_json.is_file() or not packed_json.read_text().strip():
        return []
    packed = json.loads(packed_json.read_text())
    alone = next((float(r["steps_per_s"]) for r in small if (r["experiment"], r["row"], r["variant"])
                  == ("colored_mnist", "baseline", "as configured") and r.get("status") == "ok"), None)
    line = (f"{packed['processes']} colored-MNIST baseline processes on one device: "
            f"{packed['steps_per_s_total']:.0f} steps/s in all")
    if alone:
        line += f", {packed['steps_per_s_total'] / alone:.2f}x one process alone ({alone:.0f} steps/s)"
    return [line]


def main(work: str, config: str) -> None:
    work = Path(work)
    full = Path(config).resolve() == (Path(__file__).resolve().parents[2] / "config" / "config.yaml")
    lines = (table_lines(read_csv(work / "throughput_small_projection.csv"), full)
             + photo_lines(read_csv(work / "throughput_photo.csv"), full)
             + packed_lines(work / "packed.json", read_csv(work / "throughput_small.csv")))
    text = (f"Issue 14's targets, measured with {config}"
            f"{'' if full else ' (not the full-scale config: no verdicts)'}; table times are projections from "
            "measured rates, not run times:\n") + "".join(
        f"  {line}\n" for line in lines)
    (work / "targets.txt").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} <the GPU check's work dir, e.g. results/gpu_check> <its config>")
    main(sys.argv[1], sys.argv[2])
