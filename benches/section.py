#!/usr/bin/env python3
"""Replace one benchmark's section of docs/benchmarks.md, leaving the others alone.

Usage: python3 benches/section.py NAME FILE < section.md

The section is kept between `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers; a missing
file gets a title, and a missing section is appended.
"""
import sys

name, path = sys.argv[1], sys.argv[2]
body = sys.stdin.read().rstrip("\n") + "\n"
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{begin}\n{body}{end}\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n\nEach section is written by the script named in it; rerun it to refresh.\n\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + block + tail.lstrip("\n")
else:
    text = text.rstrip("\n") + "\n\n" + block
open(path, "w").write(text)
