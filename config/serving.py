"""How gunicorn serves (PORT, HOST, WEB_CONCURRENCY, GUNICORN_CONNECTIONS), and the URL at
which Twilio reaches it (PUBLIC_BASE_URL, else what Render or Heroku says it is)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from config.dialling import HOSTNAME_RE
from config.reader import EnvReader


@dataclass(frozen=True)
class ServingSettings:
    """The listening socket and the worker counts, as Heroku and Render set them."""

    # Platforms route to 0.0.0.0:$PORT; scripts/run sets HOST=127.0.0.1 for a laptop.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8000
    workers: int = 2
    connections: int = 1000

    @property
    def bind(self) -> str:
        """gunicorn's bind address."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def read_serving(reader: EnvReader) -> ServingSettings:
    """PORT (1-65535), HOST (an IP address), WEB_CONCURRENCY and GUNICORN_CONNECTIONS (>= 1)."""
    host = reader.optional("HOST") or ServingSettings.host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        reader.problem("HOST is malformed: expected an IP address to listen on, such as "
                       "127.0.0.1 or 0.0.0.0")
        host = ServingSettings.host
    return ServingSettings(
        host=host,
        port=reader.whole("PORT", ServingSettings.port, minimum=1, maximum=65535),
        workers=reader.whole("WEB_CONCURRENCY", ServingSettings.workers, minimum=1),
        connections=reader.whole("GUNICORN_CONNECTIONS", ServingSettings.connections,
                                 minimum=1),
    )


def read_public_base_url(reader: EnvReader) -> str | None:
    """PUBLIC_BASE_URL; else the platform's own URL: RENDER_EXTERNAL_URL on Render, else
    https://$HEROKU_APP_DEFAULT_DOMAIN_NAME on Heroku (with runtime dyno metadata enabled)."""
    if reader.optional("PUBLIC_BASE_URL"):
        return reader.url("PUBLIC_BASE_URL")  # a malformed one is a problem, not a fallback
    if reader.optional("RENDER_EXTERNAL_URL"):
        return reader.url("RENDER_EXTERNAL_URL")
    domain = (reader.optional("HEROKU_APP_DEFAULT_DOMAIN_NAME") or "").lower()
    if not domain:
        return None
    if not HOSTNAME_RE.fullmatch(domain):
        reader.problem("HEROKU_APP_DEFAULT_DOMAIN_NAME is malformed: expected a host name such "
                       "as my-app-0123456789ab.herokuapp.com")
        return None
    return f"https://{domain}"
