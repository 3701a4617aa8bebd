"""A real HTTP server on 127.0.0.1 serving a folder, for the download tests (MNIST's mirrors,
the real-handwriting sets' public homes): each request's path is logged, and a test may add
misbehaviour by overriding `do_GET`."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `folder` and appends each requested path to `requests` (both set by `serve`)."""

    folder: Path
    requests: list[str]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, directory=str(self.folder), **kwargs)

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path, requests: list[str], handler: type[FolderHandler] = FolderHandler) -> Iterator[str]:
    """Serve `folder` until the block ends; yields the base URL."""
    bound = type("Bound", (handler,), {"folder": folder, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
