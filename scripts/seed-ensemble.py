#!/usr/bin/env python3
"""The seed ensemble of several `cloudformer eval` results: each model's predictions averaged
over the seeds, per test window (or run), then scored like `eval` scores one seed.

Usage: scripts/seed-ensemble.py DIR [DIR ...]   (each DIR: one seed of the same evaluation)

Every DIR must hold folds/<split>__<model>.json (written by `eval` as each fold ends) and a
predictions.csv (for the labels), with the same splits and test keys: the same protocol and
data with another --seed. A model enters only where every DIR has all of its folds. Prints a
Markdown table per model: the MAE (points of P×100, mean ± population std over the splits as
in `eval`'s summary.md, P̂ clamped to [0, 1] as `eval` does) of each seed alone, the mean of
those, and the ensemble's. The ensemble costs one training per seed; it is what averaging the
seeds' models at serving time would give (`cloudformer train` writes such an ensemble under
members/).
"""
import csv, glob, json, os, statistics, sys

dirs = sys.argv[1:]
if len(dirs) < 2:
    sys.exit(__doc__)


def labels(d):
    """The labels by key, and the models in the order the evaluation lists them."""
    path = os.path.join(d, "predictions.csv")
    if not os.path.exists(path):
        sys.exit(f"{path}: missing (an evaluation that finished writes it)")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {r["key"]: float(r["p"]) for r in rows}, list(dict.fromkeys(r["model"] for r in rows))


def folds(d):
    out = {}
    for path in glob.glob(os.path.join(d, "folds", "*__*.json")):
        with open(path) as f:
            j = json.load(f)
        out[(j["split"], j["model"])] = dict(zip(j["keys"], j["p_hat"]["0"]))
    if not out:
        sys.exit(f"{d}/folds: no folds")
    return out


lab, models = {}, []
for d in dirs:
    l, ms = labels(d)
    lab.update(l)
    models += [m for m in ms if m not in models]
runs = [folds(d) for d in dirs]
splits = sorted({s for s, _ in runs[0]})


def clamp(p):
    return min(max(p, 0.0), 1.0)


def mae(pred):
    return 100 * statistics.mean(abs(clamp(p) - lab[k]) for k, p in pred.items())


def mean_sd(v):
    """Mean ± the population standard deviation over the splits, as `eval` reports them."""
    return f"{statistics.mean(v):.2f} ± {statistics.pstdev(v):.2f}"


print(f"Seed ensemble of {len(dirs)} evaluations: " + ", ".join(dirs))
print()
print("| model | splits | " + " | ".join(os.path.basename(d) for d in dirs)
      + " | mean of the seeds | ensemble |")
print("|---|---|" + "---|" * (len(dirs) + 2))
for m in models:
    have = [s for s in splits if all((s, m) in r for r in runs)]
    if len(have) < len(splits):
        print(f"| {m} | {len(have)} of {len(splits)}: incomplete, left out |" + " |" * (len(dirs) + 2))
        continue
    per_seed = [[mae(r[(s, m)]) for s in have] for r in runs]
    ens = []
    for s in have:
        keys = runs[0][(s, m)].keys()
        for r in runs[1:]:
            if r[(s, m)].keys() != keys:
                sys.exit(f"{s}/{m}: the seeds tested different windows; not the same evaluation")
        ens.append(mae({k: statistics.mean(clamp(r[(s, m)][k]) for r in runs) for k in keys}))
    seeds_mean = statistics.mean(statistics.mean(v) for v in per_seed)
    print(f"| {m} | {len(have)} | " + " | ".join(mean_sd(v) for v in per_seed)
          + f" | {seeds_mean:.2f} | **{mean_sd(ens)}** |")
