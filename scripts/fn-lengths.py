#!/usr/bin/env python3
"""Lists Rust functions longer than N lines (default 80), longest first.

Usage: python3 scripts/fn-lengths.py [N] [DIR ...]   (DIR defaults to src)
A function spans from its `fn` line to the closing brace at the same indent; the house
rule (issue 9) is no function over ~80 lines and no file over ~600.
"""
import re, sys, pathlib
limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
roots = sys.argv[2:] or ["src"]
pat = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
rows = []
for root in roots:
    for p in sorted(pathlib.Path(root).rglob("*.rs")):
        lines = p.read_text().splitlines()
        for i, l in enumerate(lines):
            m = pat.match(l)
            if not m or l.rstrip().endswith(";"):
                continue
            ind = m.group(1)
            for j in range(i, len(lines)):
                if lines[j].startswith(ind + "}") and (len(lines[j]) == len(ind) + 1 or lines[j][len(ind)+1] in " ;)"):
                    break
            n = j - i + 1
            if n > limit:
                rows.append((n, f"{p}:{i+1}", m.group(7)))
for n, where, name in sorted(rows, reverse=True):
    print(f"{n:5} {where} {name}")
