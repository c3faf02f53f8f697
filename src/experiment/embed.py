#!/usr/bin/env python3
"""Turns a text file into a C++ raw string literal include (used for the embedded schema)."""
import sys

src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    text = f.read()
delim = "CALIPROX_EMBED"
assert f"){delim}\"" not in text
with open(dst, "w", encoding="utf-8") as f:
    f.write(f'R"{delim}({text}){delim}"\n')
