#!/usr/bin/env python3
"""Mean ± std over seeds of each model's MAE from several `cloudformer eval` results.

Usage: scripts/seeds-summary.py DIR [DIR ...]   (each DIR holds a results.json; one seed each)
Prints a Markdown table: the MAE of every model per results directory (its seed), then the
mean and the standard deviation over the directories.
"""
import json, statistics, sys

dirs = sys.argv[1:]
if not dirs:
    sys.exit(__doc__)
res = []
for d in dirs:
    with open(f"{d}/results.json") as f:
        r = json.load(f)
    res.append((d, r["options"]["seed"], {m["name"]: m["summary"]["mae_mean"] for m in r["models"]}))
models = [m for m in res[0][2] if all(m in x[2] for x in res)]
print("| model | " + " | ".join(f"seed {s}" for _, s, _ in res) + " | mean ± std over seeds |")
print("|---|" + "---|" * (len(res) + 1))
for m in models:
    v = [x[2][m] for x in res]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"| {m} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {statistics.mean(v):.2f} ± {sd:.2f} |")
