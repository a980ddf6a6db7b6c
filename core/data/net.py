"""Is the network there? A quick probe before anything slow tries to download.

Download libraries retry for minutes when offline; `check_reachable` answers in
at most `timeout` seconds so PetLab can say at once that it is offline. It
opens a TCP connection to the URL's host (or to the configured proxy), nothing
more.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def check_reachable(url: str, timeout: float = 5.0) -> bool:
    """True if a TCP connection to the host serving `url` opens within `timeout` seconds."""
    host, port = _endpoint(url)
    if not host:
        return False
    finished = threading.Event()
    reached: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reached.append(True)
        except OSError:
            pass
        finally:
            finished.set()

    # Name resolution ignores socket timeouts, so the whole attempt runs on a thread we stop waiting for.
    threading.Thread(target=connect, daemon=True, name="petlab-net-probe").start()
    finished.wait(timeout)
    return bool(reached)


def _endpoint(url: str) -> tuple[str | None, int]:
    """The (host, port) a download of `url` would connect to, honouring proxy settings."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and parts.hostname and not urllib.request.proxy_bypass(parts.hostname):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
