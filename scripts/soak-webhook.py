#!/usr/bin/env python3
"""scripts/soak-webhook.py PORT_FILE [SECRET] — the webhook receiver of `make soak`.

Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE), accepts scepter's event POSTs,
checks the X-Scepter-Signature HMAC when SECRET is given (a bad one is answered 401 and
counted), and counts deliveries, distinct event ids and events per topic.  GET /stats answers
the counts as JSON.  It exits after --max-lifetime seconds (default 7200) so a forgotten
receiver cannot outlive its run.
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_LIFETIME = 7200
LOCK = threading.Lock()
STATS = {"deliveries": 0, "distinct": 0, "bad_signature": 0, "malformed": 0, "topics": {}}
SEEN = set()
SECRET = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet: the soak samples the counts instead
        pass

    def do_GET(self):
        if self.path != "/stats":
            self.send_error(404)
            return
        with LOCK:
            body = json.dumps(STATS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if 0 < n <= 16 << 20 else b""
        status = 200
        with LOCK:
            STATS["deliveries"] += 1
            if SECRET is not None:
                want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers.get("X-Scepter-Signature", "")):
                    STATS["bad_signature"] += 1
                    status = 401
            if status == 200:
                try:
                    ev = json.loads(body)
                    eid, topic = ev["event_id"], ev["topic"]
                except (ValueError, KeyError, TypeError):
                    STATS["malformed"] += 1
                    status = 400
                else:
                    if eid not in SEEN:
                        SEEN.add(eid)
                        STATS["distinct"] += 1
                        STATS["topics"][topic] = STATS["topics"].get(topic, 0) + 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os

    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    time.sleep(MAX_LIFETIME)


if __name__ == "__main__":
    main()
