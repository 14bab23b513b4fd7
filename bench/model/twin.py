"""PyTorch twin of the candle CloudFormer (model/src/net.rs), for the side-by-side benchmark.

Same architecture, same defaults: temporal branch (Dense F->64 + ReLU, CLS, sinusoidal PE,
4 post-LN blocks of 4 heads x 16, FFN 256, dropout 0.1, key-padding mask), system branch
(mask-aware mean over time -> w*mean+b tokens (shared 1x1 conv) -> CLS -> 4 unmasked blocks),
head (128 -> 64 -> Swish -> LayerNorm -> Dropout 0.4 -> 1 -> sigmoid). Attention is written out
(as in candle) unless --sdpa asks for torch's fused scaled_dot_product_attention.

Prints one JSON line with the same keys as `cargo run -p model --example bench`.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, d_ff, p, sdpa):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, d_ff)
        self.ff2 = nn.Linear(d_ff, d)
        self.ln2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.p = p
        self.heads = heads
        self.sdpa = sdpa

    def forward(self, h, bias):
        b, n, d = h.shape
        dh = d // self.heads
        qkv = self.qkv(h).view(b, n, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.sdpa:
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.p if self.training else 0.0
            )
        else:
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
            if bias is not None:
                s = s + bias
            a = self.drop(torch.softmax(s, dim=-1)) @ v
        a = a.transpose(1, 2).reshape(b, n, d)
        h = self.ln1(h + self.drop(self.out(a)))
        f = self.ff2(F.relu(self.ff1(h)))
        return self.ln2(h + self.drop(f))


def sinusoidal(n, d):
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(d // 2, dtype=torch.float64)
    ang = pos / (10000.0 ** (2 * i / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang)
    return pe.float()


class CloudFormer(nn.Module):
    def __init__(self, f=206, d=64, heads=4, d_ff=256, tb=4, sb=4, p=0.1, hidden=64, hp=0.4, sdpa=False):
        super().__init__()
        self.inp = nn.Linear(f, d)
        self.tcls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.tblocks = nn.ModuleList([Block(d, heads, d_ff, p, sdpa) for _ in range(tb)])
        self.sw = nn.Parameter(torch.empty(d).uniform_(-1, 1))
        self.sb = nn.Parameter(torch.empty(d).uniform_(-1, 1))
        self.scls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.sblocks = nn.ModuleList([Block(d, heads, d_ff, p, sdpa) for _ in range(sb)])
        self.h1 = nn.Linear(2 * d, hidden)
        self.hln = nn.LayerNorm(hidden)
        self.hdrop = nn.Dropout(hp)
        self.h2 = nn.Linear(hidden, 1)
        self.register_buffer("pe", sinusoidal(4096, d), persistent=False)

    def forward(self, x, mask):
        b, t, _ = x.shape
        # temporal
        h = F.relu(self.inp(x))
        h = torch.cat([self.tcls.expand(b, 1, -1), h], 1) + self.pe[: t + 1]
        keys = torch.cat([torch.ones(b, 1, dtype=mask.dtype), mask], 1)
        bias = ((keys - 1.0) * 1e9).view(b, 1, 1, t + 1)
        for blk in self.tblocks:
            h = blk(h, bias)
        ct = h[:, 0]
        # system
        mean = (x * mask.unsqueeze(2)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        tok = mean.unsqueeze(2) * self.sw + self.sb
        s = torch.cat([self.scls.expand(b, 1, -1), tok], 1)
        for blk in self.sblocks:
            s = blk(s, None)
        cs = s[:, 0]
        z = self.hdrop(self.hln(F.silu(self.h1(torch.cat([ct, cs], 1)))))
        return torch.sigmoid(self.h2(z)).squeeze(1)


def log_cosh(pred, y):
    a = (pred - y).abs()
    return (a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)).mean()


def p50(v):
    v = sorted(v)
    return v[round((len(v) - 1) * 0.5)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--t", type=int, default=120)
    ap.add_argument("--f", type=int, default=206)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sdpa", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    m = CloudFormer(f=args.f, sdpa=args.sdpa)
    out = {"impl": "torch-sdpa" if args.sdpa else "torch", "params": sum(p.numel() for p in m.parameters())}

    g = torch.Generator().manual_seed(2)
    x = torch.rand(args.batch, args.t, args.f, generator=g) * 4 - 2
    mask = torch.ones(args.batch, args.t)
    y = torch.rand(args.batch, generator=g) * 0.9 + 0.1
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    m.train()
    times = []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = log_cosh(m(x, mask), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if s >= args.warmup:
            times.append(time.perf_counter() - t0)
    out["train_samples_per_s"] = round(args.batch * len(times) / sum(times), 2)
    out["train_ms_per_step"] = round(p50(times) * 1e3, 2)

    m.eval()
    for b in (1, 64):
        xb = torch.rand(b, args.t, args.f, generator=g) * 4 - 2
        mb = torch.ones(b, args.t)
        times = []
        with torch.inference_mode():
            for i in range(args.iters + 3):
                t0 = time.perf_counter()
                p = m(xb, mb).tolist()
                if i >= 3:
                    times.append(time.perf_counter() - t0)
        out[f"infer{b}_ms_p50"] = round(p50(times) * 1e3, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
