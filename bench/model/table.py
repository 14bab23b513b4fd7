"""Ratio table from the JSON lines of bench/model/run.sh (medians over rounds)."""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault(r["impl"], []).append(r)


def med(impl, key):
    v = [r[key] for r in by.get(impl, []) if key in r]
    return statistics.median(v) if v else None


metrics = [
    ("train samples/s (B=32, T=120, F=206)", "train_samples_per_s", True),
    ("infer 1 window p50 ms", "infer1_ms_p50", False),
    ("infer 64 windows p50 ms", "infer64_ms_p50", False),
]
c = "candle"
print(f"params: candle {med(c, 'params')}, torch {med('torch', 'params')}; rounds: {len(by.get(c, []))}")
peers = [p for p in ("torch", "torch-sdpa") if p in by]
hdr = f"| metric | candle | " + " | ".join(peers) + " | " + " | ".join(f"candle vs {p}" for p in peers) + " |"
print(hdr)
print("|" + "---|" * (2 + 2 * len(peers)))
for name, key, higher in metrics:
    cv = med(c, key)
    vals = [med(p, key) for p in peers]
    ratios = []
    for v in vals:
        if cv is None or v is None:
            ratios.append("n/a")
        else:
            ratios.append(f"{(cv / v if higher else v / cv):.2f}x")
    print(f"| {name} | {cv} | " + " | ".join(str(v) for v in vals) + " | " + " | ".join(ratios) + " |")
for key, what in (("graph_infer1_ms_p50", "1 window"), ("graph_infer64_ms_p50", "64 windows")):
    if med(c, key) is not None:
        print(f"candle graph (autograd tensors, before the slice path) infer {what}: {med(c, key)} ms p50")
for key in ("predictor1_ms_p50", "predictor64_ms_p50"):
    if med(c, key) is not None:
        print(f"candle Predictor ({key}): {med(c, key)} ms (normalise + forward + 16 MC-dropout head passes + OOD)")
print("(ratio > 1 means candle is faster)")
