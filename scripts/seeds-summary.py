#!/usr/bin/env python3
"""Mean ± std over seeds of each model's MAE from several `cloudformer eval` results.

Usage: scripts/seeds-summary.py DIR [DIR ...]   (each DIR holds a results.json; one seed each)
Prints a Markdown table: the MAE of every model per results directory (its seed), then the
mean and the standard deviation over the directories, then the same mean ± std of the MAE on
the isolated test runs alone (the tenant alone, P ≈ 1; "n/a" for results written before it was
measured).
"""
import json, statistics, sys

dirs = sys.argv[1:]
if not dirs:
    sys.exit(__doc__)
res = []
for d in dirs:
    with open(f"{d}/results.json") as f:
        r = json.load(f)
    res.append((d, r["options"]["seed"], {m["name"]: m["summary"]["mae_mean"] for m in r["models"]},
                {m["name"]: (m.get("isolated") or {}).get("mae_mean") for m in r["models"]}))
models = [m for m in res[0][2] if all(m in x[2] for x in res)]


def mean_sd(v):
    v = [x for x in v if isinstance(x, (int, float))]
    if not v:
        return "n/a"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.2f} ± {sd:.2f}"


print("| model | " + " | ".join(f"seed {x[1]}" for x in res)
      + " | mean ± std over seeds | isolated runs, mean ± std |")
print("|---|" + "---|" * (len(res) + 2))
for m in models:
    v = [x[2][m] for x in res]
    print(f"| {m} | " + " | ".join(f"{x:.2f}" for x in v)
          + f" | {mean_sd(v)} | {mean_sd([x[3].get(m) for x in res])} |")
