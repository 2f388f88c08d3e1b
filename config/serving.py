"""How gunicorn serves: PORT, HOST, WEB_CONCURRENCY and GUNICORN_CONNECTIONS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
