#!/usr/bin/env python3
"""Checks the import rules of ARCHITECTURE.md ("Module map"): which top-level module of `src/` may
use which. Doc comments and intra-doc links are not imports and are ignored.

    python3 scripts/imports.py        # prints the graph; exits 1 on a forbidden import or a cycle
"""

import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Foundations, then the request path in order: route → policy → execute → meter; wire beside them.
FOUNDATION = {"error", "body", "clock", "hash", "macros", "telemetry"}
ALLOWED = {
    "error": set(),
    "body": set(),
    "clock": set(),
    "hash": set(),
    "macros": set(),
    "telemetry": set(),
    "catalog": {"clock", "hash", "error"},
    "health": {"catalog"},
    "stats": {"catalog", "hash", "health"},
    "route": {"catalog", "health"},
    "wire": {"catalog", "route"},
    "model_routing": {"catalog", "health", "stats", "route"},
    "data_policy": {"catalog", "route"},
    "price_cap": {"catalog", "route"},
    "percentile": {"catalog", "health", "stats", "route"},
    "fallback": {"catalog", "health", "stats", "route", "wire"},
    "usage_meter": {"catalog", "stats", "route", "wire"},
    "cache": {"route", "usage_meter"},
    "keep_alive": {"route", "usage_meter", "wire"},
    "rate_limit": {"catalog", "route", "usage_meter", "fallback"},
    "compat": {"catalog", "route", "wire"},
    "responses": {"wire"},
    "sim": {"catalog", "wire"},
    "gateway_layer": {"catalog", "health", "stats", "route", "model_routing", "data_policy",
                      "price_cap", "percentile", "rate_limit", "keep_alive", "cache", "usage_meter",
                      "fallback"},
    "client": set(),
    "redis": {"catalog", "health", "stats", "model_routing", "usage_meter", "rate_limit", "cache",
              "wire"},
    "lib": None,  # the crate root re-exports everything
}

USE = re.compile(r"crate::([a-z_]+)")


def module_of(path):
    rel = os.path.relpath(path, SRC)
    head = rel.split(os.sep)[0]
    return head[:-3] if head.endswith(".rs") else head


def imports(path):
    found = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            code = line.split("//", 1)[0]
            found.update(USE.findall(code))
    return found


def main():
    graph = {}
    for root, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                m = module_of(p)
                graph.setdefault(m, set()).update(imports(p) - {m})
    bad = []
    for m, deps in sorted(graph.items()):
        allowed = ALLOWED.get(m, set())
        print(f"{m:14} -> {' '.join(sorted(deps)) or '-'}")
        if allowed is None:
            continue
        for d in sorted(deps):
            if d not in allowed and d not in FOUNDATION:
                bad.append(f"{m} may not import {d}")
        if m not in ALLOWED:
            bad.append(f"{m} is not in the module map (scripts/imports.py, ARCHITECTURE.md)")
    # Cycles among modules (the rules above forbid them; this also catches a rule that allows one).
    def visit(m, stack):
        for d in graph.get(m, ()):
            if d == "lib" or d not in graph:
                continue
            if d in stack:
                bad.append("cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
                continue
            visit(d, stack + [d])
    for m in graph:
        if m != "lib":
            visit(m, [m])
    for b in sorted(set(bad)):
        print("forbidden:", b)
    print(f"{len(set(bad))} forbidden imports or cycles")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
