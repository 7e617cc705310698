#!/usr/bin/python3
"""Checks that every #include "layer/..." under src/ points down the layer table of DESIGN.md.

Usage: check_layers.py [SRC_DIR]   (default: the src/ beside this script)
Prints file:line and the offending include for each violation; exits 1 if there is any.
"""
import os
import re
import sys

# What each folder may include directly (DESIGN.md, "Layers"); what those may use is
# allowed too, so engine may include base.
MAY_USE = {
    "base": [],
    "tensor": ["base"],
    "kernels": ["base", "tensor"],
    "model": ["kernels"],
    "tokenizer": ["base"],
    "comm": ["base"],
    "cluster": ["comm"],
    "parallel": ["model", "comm"],
    "engine": ["parallel", "tokenizer"],
    "server": ["engine"],
    "cli": None,  # everything
}

# Known includes against the table, each with the reason it stays for now.
EXCEPTIONS = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"(([^"/]+)/[^"]*)"')


def allowed(layer):
    """The layers `layer` may include: itself and everything below it."""
    out, todo = {layer}, list(MAY_USE[layer] or [])
    while todo:
        below = todo.pop()
        if below not in out:
            out.add(below)
            todo.extend(MAY_USE[below] or [])
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    src = os.path.normpath(src)
    bad = 0
    for layer in sorted(os.listdir(src)):
        top = os.path.join(src, layer)
        if not os.path.isdir(top):
            continue
        if layer not in MAY_USE:
            print(f"src/{layer}: folder not in the layer table (scripts/check_layers.py)")
            bad += 1
            continue
        ok = None if MAY_USE[layer] is None else allowed(layer)
        for root, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m or m.group(2) not in MAY_USE or ok is None:
                            continue
                        if m.group(2) not in ok and (layer, m.group(1)) not in EXCEPTIONS:
                            rel = os.path.relpath(path, os.path.dirname(src))
                            print(f"{rel}:{number}: {layer} may not include {m.group(2)}: "
                                  f"{line.strip()}")
                            bad += 1
    if bad:
        print(f"{bad} include(s) against the layers; see the table in DESIGN.md")
        return 1
    print("layers ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
