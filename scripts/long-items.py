#!/usr/bin/env python3
"""List non-test Rust functions over N lines and files over M lines.

Usage: scripts/long-items.py [--fn 80] [--file 500] [paths...]
A function is counted from its `fn` line to its closing brace; bodies inside
`#[cfg(test)]` modules and files under tests/ or benches/ are skipped. A function
whose preceding lines hold a comment with `long-fn:` (the reason) is listed as
excused instead of failing. Exit status 1 when anything unexcused is listed.
"""
import argparse, os, re, sys

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)')

def strip(line):
    # drop string literals and line comments well enough for brace counting
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split('//', 1)[0]

def scan(path, max_fn):
    lines = open(path, encoding='utf-8').read().split('\n')
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip().startswith('#[cfg(test)]'):
            break  # test module: the rest of the file by convention
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            s = strip(lines[j])
            if not started and ';' in s and '{' not in s:
                break  # a declaration without a body
            depth += s.count('{') - s.count('}')
            if '{' in s:
                started = True
            if started and depth <= 0:
                break
            j += 1
        n = j - i + 1
        if started and n > max_fn:
            ctx = '\n'.join(lines[max(0, i - 6):i])
            out.append((n, m.group(7), i + 1, 'long-fn:' in ctx))
        i = j + 1 if started else i + 1
    return len(lines), out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--fn', type=int, default=80)
    ap.add_argument('--file', type=int, default=500)
    ap.add_argument('paths', nargs='*', default=['.'])
    a = ap.parse_args()
    bad = 0
    for root in a.paths:
        for dp, dns, fns in os.walk(root):
            dns[:] = [d for d in dns if d not in ('target', '.git', 'tests', 'benches', 'examples')]
            for f in sorted(fns):
                if not f.endswith('.rs'):
                    continue
                p = os.path.join(dp, f)
                n, longs = scan(p, a.fn)
                if n > a.file:
                    print(f'file {n:5} {p}')
                    bad += 1
                for ln, name, at, excused in longs:
                    print(f'fn   {ln:5} {p}:{at} {name}' + ('  (excused: long-fn)' if excused else ''))
                    bad += 0 if excused else 1
    sys.exit(1 if bad else 0)

main()
