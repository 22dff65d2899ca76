"""A logging reverse proxy: records each request (method, path, headers, body summary) and the
response status as one JSON line, and forwards everything to the gateway unchanged (streaming).

Usage: python logproxy.py LISTEN_PORT UPSTREAM_PORT LOGFILE
"""

import http.client
import http.server
import json
import sys

LISTEN, UPSTREAM, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items())}
        if "authorization" in {k.lower() for k in entry["headers"]}:
            entry["headers"] = {
                k: ("<redacted>" if k.lower() in ("authorization", "x-api-key") else v)
                for k, v in entry["headers"].items()
            }
        try:
            j = json.loads(body) if body else None
            if isinstance(j, dict):
                entry["body_keys"] = sorted(j)
                entry["model"] = j.get("model")
                entry["stream"] = j.get("stream")
                entry["max_tokens"] = j.get("max_tokens")
                entry["roles"] = [m.get("role") for m in j.get("messages", []) if isinstance(m, dict)]
                entry["thinking"] = j.get("thinking")
                entry["body_len"] = len(body)
        except ValueError:
            entry["body_raw"] = body[:200].decode("utf-8", "replace")
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        res = conn.getresponse()
        entry["status"] = res.status
        self.send_response(res.status)
        for k, v in res.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        head = b""
        while True:
            chunk = res.read1(65536)
            if not chunk:
                break
            if len(head) < 600:
                head += chunk
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        entry["response_head"] = head[:600].decode("utf-8", "replace")
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _forward


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
