"""Whether the Hugging Face hub can be reached, decided once, in seconds.

Without a network, huggingface_hub retries every request with back-off, about a minute per
model or dataset, printing a line per try. One short connection attempt decides instead, to
the hub's endpoint (``HF_ENDPOINT``) or to the proxy that ``HTTPS_PROXY`` (or ``ALL_PROXY``) names for it: a
model then loads from the local cache at once, and a missing one is a one-line error.
"""
from __future__ import annotations

import functools
import socket
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import huggingface_hub
from huggingface_hub import constants

PROBE_SECONDS = 3.0


@functools.cache
def reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the hub's host accepts a connection within ``timeout`` seconds (False in offline mode)."""
    if huggingface_hub.is_offline_mode():
        return False
    url = urlsplit(constants.ENDPOINT)
    proxies = getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not proxy_bypass(url.hostname or ""):
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")  # behind a proxy, the proxy is what must answer
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:  # no route, refused, timed out, or the name does not resolve
        return False
