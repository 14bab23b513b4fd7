#!/usr/bin/env python3
"""Soak of `cloudformer serve`: valid traffic beside garbage for SECONDS, memory watched.

Starts the server (bundled model, loopback, a free port), then runs side by side for --seconds:
- valid clients: POST /v1/predict (one 30-s window, "partial": true) and GET /readyz on kept-alive
  connections; every answer's status is counted;
- attackers, each probe on a fresh socket: random bytes, made-up ~300-byte methods, random
  paths, malformed and truncated JSON, oversize heads (431), long URIs (414), bodies that stall
  (408), slowloris heads, idle sockets, binary infer bodies with wrong sizes;
- the server's RSS (VmRSS) every second.

Pass: RSS growth after the warm-up ≤ --max-growth-mb, zero 5xx (and zero failures) for valid
requests, the server alive. Writes a Markdown report (--out) with the rerun command; exits 1 on a
failed goal. Needs only Python's standard library.
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(binary, model, extra):
    cmd = [binary, "--quiet", "serve", "--model", model, "--listen", "127.0.0.1:0",
           "--reload-poll-s", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "listening on http://" in line:
            addr = line.split("listening on http://", 1)[1].split()[0]
            host, port = addr.rsplit(":", 1)
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, host, int(port), cmd
    sys.exit(f"soak: the server exited before listening ({' '.join(cmd)})")


def valid_body():
    t = 30
    metrics = {
        "cpu.usage_pct": [55.0 + (i % 5) for i in range(t)],
        "mem.current_bytes": [1.5e9] * t,
        "nbr.cpu.usage_pct": [40.0 + (i % 3) for i in range(t)],
    }
    return json.dumps({"windows": [{"id": "soak", "metrics": metrics}], "partial": True}).encode()


class Valid(threading.Thread):
    """A client on one kept-alive connection: predicts and readiness probes, statuses counted."""

    def __init__(self, host, port, stop, body):
        super().__init__(daemon=True)
        self.host, self.port, self.stop, self.body = host, port, stop, body
        self.statuses = Counter()
        self.failures = Counter()
        self.latencies = []

    def run(self):
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                t0 = time.monotonic()
                if i % 4:
                    conn.request("POST", "/v1/predict", body=self.body,
                                 headers={"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/readyz")
                r = conn.getresponse()
                r.read()
                self.latencies.append(time.monotonic() - t0)
                self.statuses[r.status] += 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                # A kept-alive connection the server closed while idle (header timeout) is
                # retried on a new one; anything else is a failure of a valid request.
                if isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)) and i > 1:
                    self.failures["reconnect"] += 1
                else:
                    self.failures[type(e).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.01)


def probes(host, port, rng):
    """The attacks, each a function of a fresh socket."""

    def send(data, read=True):
        def probe(s):
            s.sendall(data)
            if read:
                s.recv(65536)
        return probe

    def slowloris(s):
        for b in b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa":
            s.sendall(bytes([b]))
            time.sleep(0.2)

    def stalled_body(s):
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"windows\"")
        time.sleep(2)

    def idle(s):
        time.sleep(2)

    def junk():
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))

    method = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(300))
    path = "/" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
    bad_json = b'{"windows": [{"metrics": {"cpu.usage_pct": [1, 2, '
    binary = b'{"inputs":[{"name":"metrics","shape":[1,30,222],"datatype":"FP32","parameters":{"binary_data_size":26640}}]}'
    return [
        send(junk()),
        send(f"{method} / HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        send(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(bad_json) + bad_json),
        send(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (80 << 10) + b"\r\n\r\n"),
        send(b"GET /" + b"u" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        send(b"POST /v2/models/cloudformer/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(binary), len(binary) + 100) + binary + b"\0" * 100),
        send(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        slowloris,
        stalled_body,
        idle,
    ]


class Attacker(threading.Thread):
    def __init__(self, host, port, stop, seed):
        super().__init__(daemon=True)
        self.host, self.port, self.stop = host, port, stop
        self.rng = random.Random(seed)
        self.sent = Counter()

    def run(self):
        while not self.stop.is_set():
            ps = probes(self.host, self.port, self.rng)
            k = self.rng.randrange(len(ps))
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    ps[k](s)
            except OSError:
                pass
            self.sent[k] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/cloudformer"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/default"))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--valid", type=int, default=4, help="valid client connections")
    ap.add_argument("--attackers", type=int, default=8)
    ap.add_argument("--max-growth-mb", type=float, default=5.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/soak.md"))
    ap.add_argument("serve_args", nargs="*", help="extra `serve` flags (after --)")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"soak: no executable {a.bin}: build first (cargo build)")
    proc, host, port, cmd = start_server(a.bin, a.model, a.serve_args)
    try:
        stop = threading.Event()
        valid = [Valid(host, port, stop, valid_body()) for _ in range(a.valid)]
        attackers = [Attacker(host, port, stop, seed) for seed in range(a.attackers)]
        for t in valid + attackers:
            t.start()
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.warmup + a.seconds:
            samples.append((round(time.monotonic() - t0), rss_mb(proc.pid)))
            if proc.poll() is not None:
                break
            time.sleep(1)
        stop.set()
        for t in valid + attackers:
            t.join(timeout=15)
        alive = proc.poll() is None
        metrics = ""
        if alive:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.request("GET", "/metrics")
            metrics = c.getresponse().read().decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()

    after_warmup = [m for s, m in samples if s >= a.warmup and m is not None]
    base, end, peak = after_warmup[0], after_warmup[-1], max(after_warmup)
    growth = end - base
    statuses = sum((v.statuses for v in valid), Counter())
    failures = sum((v.failures for v in valid), Counter())
    hard_failures = {k: n for k, n in failures.items() if k != "reconnect"}
    lat = sorted(x for v in valid for x in v.latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else float("nan")
    probes_sent = sum(sum(t.sent.values()) for t in attackers)
    five = sum(n for s, n in statuses.items() if s >= 500)
    ok = alive and growth <= a.max_growth_mb and five == 0 and not hard_failures
    closed = [l for l in metrics.splitlines() if l.startswith("cloudformer_http_connections_closed_total")]
    rerun = f"python3 bench/serve/soak.py --seconds {a.seconds} --warmup {a.warmup} --valid {a.valid} --attackers {a.attackers}"
    report = f"""# Soak: valid traffic beside garbage (`bench/serve/soak.py`)

- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs; the clients share them with the server
- server: `{' '.join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in cmd)}`
- rerun: `{rerun}`
- load: {a.warmup} s warm-up, then {a.seconds} s; {a.valid} valid clients (POST /v1/predict one 30-s window, 3 in 4; GET /readyz 1 in 4; kept-alive), {a.attackers} attackers ({probes_sent} probes: random bytes, 300-byte methods, random paths, bad JSON, 80 KiB headers, 10 KB URIs, wrong binary sizes, bad chunking, slowloris heads, stalled bodies, idle sockets)

| goal | measured | met |
|---|---|---|
| server RSS growth after the warm-up ≤ {a.max_growth_mb:g} MB | {base:.1f} → {end:.1f} MB ({growth:+.1f}; peak {peak:.1f}) | {'yes' if growth <= a.max_growth_mb else '**no**'} |
| zero 5xx for valid requests | {five} of {sum(statuses.values())} (statuses {dict(sorted(statuses.items()))}) | {'yes' if five == 0 else '**no**'} |
| valid requests never fail | failures {dict(hard_failures) or 'none'}; reconnects after an idle close {failures.get('reconnect', 0)} | {'yes' if not hard_failures else '**no**'} |
| server alive at the end | {alive} | {'yes' if alive else '**no**'} |

- valid request latency p99: {p99:.1f} ms
- connections the server closed early: {'; '.join(closed) or 'n/a'}
- RSS every second (s: MB): {', '.join(f'{s}: {m:.1f}' for s, m in samples if m is not None)}
"""
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(report)
    print(report)
    print(f"soak: wrote {os.path.relpath(a.out, ROOT)}; {'PASS' if ok else 'FAIL'}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
