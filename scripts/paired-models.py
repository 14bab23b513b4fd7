#!/usr/bin/env python3
"""Two models of the same evaluation compared split by split (paired), over one or more seeds.

Usage: scripts/paired-models.py A B DIR [DIR ...] [--b-dirs DIR,DIR,...]
  A, B: model names as in the folds (e.g. cf gbdt); each DIR: one seed of the same evaluation
  (folds/<split>__<model>.json and predictions.csv, as `cloudformer eval` writes them).
  --b-dirs: take B from these directories instead (one per DIR, the same seeds in the same
  order), to compare two recipes of one model, e.g. `cf-temporal cf-temporal v2p7-val3-w30 ...
  --b-dirs v2p7-w30,...`; the test windows must be the same.
  A name X+Y (+Z ...) is the blend of those models: the equal-weight mean of their clamped
  predictions, window by window (no weight is fitted, so nothing is chosen on test data). Each
  part is read from its side's directory of the seed, or with a suffix @a from the seed's DIR and
  @b from its --b-dirs directory, e.g. `cf-temporal+gbdt@b rf-rich v2p7-val3-w30 ... --b-dirs
  v2p7-val3r-w30,...` blends cf-temporal of one evaluation with gbdt of the other.

Prints, per split (one held-out application under LOAO), each model's MAE (points of P×100,
P̂ clamped to [0, 1] as `eval` does) as the mean over the seeds and as the seeds' ensemble (the
mean prediction), and the difference A − B; then how many splits A wins and the two-sided sign
test's p-value. The means over splits are `eval`'s MAE; the sign test asks whether A is better
on more held-out applications than chance would give, which a difference of means does not.
"""
import csv, glob, json, math, os, statistics, sys

args = sys.argv[1:]
b_dirs = None
if "--b-dirs" in args:
    i = args.index("--b-dirs")
    if i + 1 >= len(args):
        sys.exit("--b-dirs needs a comma-separated list of directories")
    b_dirs = args[i + 1].split(",")
    del args[i : i + 2]
if len(args) < 3:
    sys.exit(__doc__)
a, b, dirs = args[0], args[1], args[2:]
if b_dirs is not None and len(b_dirs) != len(dirs):
    sys.exit(f"--b-dirs has {len(b_dirs)} directories for {len(dirs)} seeds: give one per DIR")
b_dirs = b_dirs or dirs


def labels(d):
    path = os.path.join(d, "predictions.csv")
    if not os.path.exists(path):
        sys.exit(f"{path}: missing (an evaluation that finished writes it)")
    with open(path) as f:
        return {r["key"]: float(r["p"]) for r in csv.DictReader(f)}


def clamp(p):
    return min(max(p, 0.0), 1.0)


def model_folds(d, model):
    out = {}
    for path in glob.glob(os.path.join(d, "folds", f"*__{model}.json")):
        with open(path) as f:
            j = json.load(f)
        out[j["split"]] = dict(zip(j["keys"], j["p_hat"]["0"]))
    return out


def folds(model, own, a_dir, b_dir):
    """The folds of `model` in `own`; a blend X+Y@b reads a part marked @a / @b from a_dir / b_dir."""
    parts = []
    for m in model.split("+"):
        name, _, side = m.partition("@")
        if side not in ("", "a", "b"):
            sys.exit(f"{m!r}: a blend's part ends in @a or @b, or in nothing")
        d = {"": own, "a": a_dir, "b": b_dir}[side]
        f = model_folds(d, name)
        if not f:
            sys.exit(f"{d}/folds: no folds of model {name!r}")
        parts.append(f)
    if len(parts) == 1:
        return parts[0]
    out = {}
    for s in set.intersection(*(set(f) for f in parts)):
        keys = parts[0][s].keys()
        if any(f[s].keys() != keys for f in parts):
            sys.exit(f"{d}: {model}: the parts tested different windows in {s}")
        out[s] = {k: statistics.mean(clamp(f[s][k]) for f in parts) for k in keys}
    return out


lab = {}
for d in dirs + b_dirs:
    for k, p in labels(d).items():
        if lab.setdefault(k, p) != p:
            sys.exit(f"{d}: window {k} has another label than in the other directories")
fa = [folds(a, d, d, o) for d, o in zip(dirs, b_dirs)]
fb = [folds(b, o, d, o) for d, o in zip(dirs, b_dirs)]
splits = sorted(set.intersection(*(set(f) for f in fa + fb)))
missing = sorted(set.union(*(set(f) for f in fa + fb)) - set(splits))
if missing:
    sys.exit(f"splits missing in some seed or model: {', '.join(missing)}")


def mae(pred):
    return 100 * statistics.mean(abs(clamp(p) - lab[k]) for k, p in pred.items())


def ensemble(fs, s):
    keys = fs[0][s].keys()
    if any(f[s].keys() != keys for f in fs):
        sys.exit(f"{s}: the seeds or recipes tested different windows; not the same evaluation")
    return {k: statistics.mean(clamp(f[s][k]) for f in fs) for k in keys}


def sign_test(wins, n):
    """Two-sided exact binomial test of `wins` of `n` against p = 1/2."""
    tail = sum(math.comb(n, i) for i in range(0, min(wins, n - wins) + 1)) / 2**n
    return min(1.0, 2 * tail)


rows = []
for s in splits:
    ma = statistics.mean(mae(f[s]) for f in fa)
    mb = statistics.mean(mae(f[s]) for f in fb)
    ea, eb = mae(ensemble(fa, s)), mae(ensemble(fb, s))
    rows.append((s, ma, mb, ea, eb))

print(f"{a} against {b}, {len(splits)} splits, {len(dirs)} seed(s): " + ", ".join(dirs)
      + ("" if b_dirs == dirs else f"; {b} from " + ", ".join(b_dirs)))
print()
print(f"| split | {a} (seed mean) | {b} (seed mean) | Δ | {a} ensemble | {b} ensemble | Δ |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s, ma, mb, ea, eb in rows:
    print(f"| {s} | {ma:.2f} | {mb:.2f} | {ma - mb:+.2f} | {ea:.2f} | {eb:.2f} | {ea - eb:+.2f} |")
col = lambda i: statistics.mean(r[i] for r in rows)
print(f"| **mean** | {col(1):.2f} | {col(2):.2f} | {col(1) - col(2):+.2f} | {col(3):.2f} | "
      f"{col(4):.2f} | {col(3) - col(4):+.2f} |")
print()
for name, fs in ((a, fa), (b, fb)):
    per_seed = [statistics.mean(mae(f[s]) for s in splits) for f in fs]
    spread = f" ± {statistics.stdev(per_seed):.2f}" if len(per_seed) > 1 else ""
    print(f"{name} per seed: " + ", ".join(f"{m:.2f}" for m in per_seed)
          + f"; mean {statistics.mean(per_seed):.2f}{spread}")
print()
for label, i, j in (("seed mean", 1, 2), ("ensemble", 3, 4)):
    wins = sum(r[i] < r[j] for r in rows)
    ties = sum(r[i] == r[j] for r in rows)
    n = len(rows) - ties
    print(f"{label}: {a} better on {wins} of {n} splits ({ties} ties), "
          f"two-sided sign test p = {sign_test(wins, n):.2f}")
