#!/usr/bin/env python3
"""Prints B1's table (docs/performance.md) from the last run's Criterion
estimates: medians in ns, and the ratios the targets are about.

Run after `cargo bench --manifest-path benches/peers/Cargo.toml`:
    python3 benches/peers/table.py
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target"))
ROOT = os.path.join(TARGET, "criterion", "B1")
CONDITIONS = ["C1", "C2", "C3", "C4"]
ENGINES = ["native", "steward", "rhai", "zen", "cel"]
PEERS = ["rhai", "zen", "cel"]
NAMES = {
    "native": "native closure (the limit)",
    "steward": "**Steward**",
    "rhai": "rhai",
    "zen": "zen-expression",
    "cel": "cel-interpreter",
}


def median(cond, engine, stage):
    path = os.path.join(ROOT, f"{cond} {engine} {stage}", "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        sys.exit(f"no result at {path}: run the benchmark first")


def show(ns):
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def main():
    print("| ns, median | " + " | ".join(CONDITIONS) + " |")
    print("| --- |" + " --- |" * len(CONDITIONS))
    for stage in ["eval", "json"]:
        for engine in ENGINES:
            cells = [show(median(c, engine, stage)) for c in CONDITIONS]
            print(f"| {NAMES[engine]} {stage} | " + " | ".join(cells) + " |")
    cells = []
    for c in CONDITIONS:
        ours = median(c, "steward", "eval")
        best = min(PEERS, key=lambda p: median(c, p, "eval"))
        cells.append(f"{median(c, best, 'eval') / ours:.1f}x ({best})")
    print("| Steward eval: times faster than the fastest peer | " + " | ".join(cells) + " |")
    cells = []
    for c in CONDITIONS:
        ratio = median(c, "steward", "json") / median(c, "native", "json")
        cells.append(f"{ratio:.2f}x")
    print("| Steward json: time over native json | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
