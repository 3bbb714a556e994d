"""A bounded HTTP file server on 127.0.0.1 for tests and ``make grade``: it stands in for the places the graded
scripts download from (a model link, the Hugging Face hub's resolve URLs, the CATR release).

Every response carries what ``huggingface_hub`` needs from a hub (``ETag``, ``X-Repo-Commit``, ``Content-Length``)
and what ``wget`` and ``torch.hub`` need from any server. Requests are counted per path, so callers can check that
a cache was used. Only loopback is ever bound, and the server stops when the ``with`` block ends.
"""
import hashlib
import http.server
import threading
from collections import Counter
from pathlib import Path

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex revision; the hub client caches under it


def hub_path(repo_id: str, filename: str, revision: str = "main") -> str:
    """The URL path ``hf_hub_download`` asks for."""
    return f"/{repo_id}/resolve/{revision}/{filename}"


class LoopbackServer:
    """``files``: URL path -> local file (or bytes). ``url(path)`` gives the full URL; ``hits[path]`` the number of
    GETs served."""

    def __init__(self, files: dict, max_requests: int = 200):
        self.files = dict(files)
        self.hits = Counter()
        self.max_requests = max_requests
        self._served = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self):
                src = server.files.get(self.path.split("?")[0])
                if src is None:
                    return None
                return src if isinstance(src, bytes) else Path(src).read_bytes()

            def _answer(self, send_body: bool):
                server._served += 1
                body = self._body() if server._served <= server.max_requests else None
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("X-Repo-Commit", HUB_COMMIT)
                self.end_headers()
                if send_body:
                    server.hits[self.path.split("?")[0]] += 1
                    self.wfile.write(body)

            def do_HEAD(self):
                self._answer(send_body=False)

            def do_GET(self):
                self._answer(send_body=True)

            def log_message(self, *args):  # keep test and grade output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 10
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

