"""Reads Claude Code's `--output-format json|stream-json` output on stdin and prints `ok` if its
result matches argv[1] (`ok` for a successful answer, or the expected API error status), else why
not."""

import json
import sys

expect = sys.argv[1]
lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
try:
    r = json.loads(lines[-1]) if lines else {}
except ValueError as e:
    print(f"not JSON ({e}): {lines[-1][:200]!r}")
    sys.exit()
if r.get("type") != "result":
    print(f"the last line is not a result: {str(r)[:200]}")
    sys.exit()
if expect == "ok":
    ok = not r.get("is_error") and bool(r.get("result"))
else:
    ok = bool(r.get("is_error")) and str(r.get("api_error_status")) == expect
if ok:
    print("ok")
else:
    status = r.get("api_error_status")
    print(f"is_error={r.get('is_error')} status={status} result={str(r.get('result'))[:200]!r}")
