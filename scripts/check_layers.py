#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check_layers.py — holds the sources to docs/architecture.md's module table: every
# src/*.c file has a row, and a file calls (by name, outside comments and strings) only
# functions defined in files below its own row. A call upward is a circle in the making:
# it fails make check with the file, the callee and where each sits.
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
table = (root / "docs" / "architecture.md").read_text()
order = re.findall(r"^\| `([\w.]+\.c)` \|", table, flags=re.M)
place = {f: i for i, f in enumerate(order)}
srcs = sorted(p.name for p in (root / "src").glob("*.c"))
bad = [f for f in srcs if f not in place]
if bad:
    sys.exit("check_layers: no row in docs/architecture.md for " + ", ".join(bad))
text, defs = {}, {}
for f in srcs:
    s = (root / "src" / f).read_text()
    s = re.sub(r"/\*.*?\*/", " ", s, flags=re.S)
    s = re.sub(r'"(\\.|[^"\\])*"', '""', s)
    text[f] = s
    for m in re.finditer(r"^(?!static)[a-z][\w \*]*?\b(\w+)\(", s, flags=re.M):
        defs.setdefault(m.group(1), f)
errors = []
for f in srcs:
    for fn, where in defs.items():
        if where != f and place[where] < place[f] and re.search(r"\b%s\(" % fn, text[f]):
            errors.append("%s calls %s() of %s, which sits above it" % (f, fn, where))
if errors:
    sys.exit("check_layers: calls go up the module table:\n  " + "\n  ".join(errors))
print("check_layers: %d files, every call goes down the module table" % len(srcs))
