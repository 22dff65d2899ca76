#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 80 lines), for the size rules in ARCHITECTURE.md.

    python3 scripts/fn-sizes.py [--max N] PATH...

A function's length counts from its `fn` line to its closing brace. The scan is lexical (it skips
strings, chars and comments when matching braces), which is enough for this crate's code.
Exits 1 when a function is over the limit.
"""

import os
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def strip(line, state):
    """Removes comments and string/char literals from one line; `state` carries block comments."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            state["block"] = False
            i = end + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        if c == '"' or line.startswith('r"', i) or line.startswith("r#", i):
            # raw strings r#"..."#
            m = re.match(r'r(#*)"', line[i:])
            if m:
                close = '"' + m.group(1)
                end = line.find(close, i + len(m.group(0)))
                if end < 0:
                    state["raw"] = close
                    return "".join(out)
                i = end + len(close)
                continue
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def scan(path, limit):
    over = []
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    state = {"block": False, "raw": None}
    stack = []  # (name, start line, depth at start)
    depth = 0
    pending = None
    for no, line in enumerate(lines, 1):
        if state.get("raw"):
            end = line.find(state["raw"])
            if end < 0:
                continue
            line = line[end + len(state["raw"]):]
            state["raw"] = None
        m = FN.match(line)
        code = strip(line, state)
        if m and pending is None:
            pending = (m.group(7), no)
        for ch in code:
            if ch == "{":
                depth += 1
                if pending is not None:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
            elif ch == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    length = no - start + 1
                    if length > limit:
                        over.append((length, path, start, name))
                depth -= 1
            elif ch == ";" and pending is not None and not stack_contains_paren(code):
                pending = None  # a declaration without a body
    return over


def stack_contains_paren(_code):
    return False


def main():
    args = sys.argv[1:]
    limit = 80
    if args[:1] == ["--max"]:
        limit = int(args[1])
        args = args[2:]
    files = []
    for a in args or ["src"]:
        if os.path.isdir(a):
            for root, _, names in os.walk(a):
                files += [os.path.join(root, x) for x in names if x.endswith(".rs")]
        else:
            files.append(a)
    over = []
    for f in sorted(files):
        over += scan(f, limit)
    for length, path, start, name in sorted(over, reverse=True):
        print(f"{length:5} {path}:{start} fn {name}")
    print(f"{len(over)} functions over {limit} lines in {len(files)} files")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
