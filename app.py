"""callrelay's composition root: `create_app` wires settings, store, Twilio and routes."""

from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config.logs import configure_logging
from config.settings import Settings
from services.forwarding import ForwardingOptions
from services.notify import Notifier
from services.store import Retention, Store, open_store
from services.twilio.dial_policy import DialPolicy
from services.twilio_gateway import TwilioGateway, TwilioRestGateway
from web import api, ops, twilio_hooks
from web.errors import register_error_handlers
from web.forwarding import register_forwarding
from web.observability import register_observability

# Bodies larger than this are refused (413) before they are read whole: a /notify body holds
# at most 10,000 characters of content, which JSON escaping can at most sextuple.
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               twilio: TwilioGateway | None = None,
               forwarding: ForwardingOptions | None = None) -> Flask:
    """Build the Flask app; anything not given is built from the environment."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    register_proxy_fix(app, settings)
    register_observability(app, settings)
    register_services(app, settings, store, twilio)
    register_blueprints(app)
    register_forwarding(app, settings, forwarding)
    register_error_handlers(app)
    logging.getLogger("callrelay").info("callrelay ready", extra={
        "store": settings.store_url.split(":", 1)[0], "pid": os.getpid()})
    return app


def register_proxy_fix(app: Flask, settings: Settings) -> None:
    """Believe X-Forwarded-* from TRUSTED_PROXY_HOPS proxies (Heroku's and Render's routers)."""
    hops = settings.trusted_proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,  # type: ignore[method-assign]
                                x_host=hops, x_port=hops, x_prefix=hops)


def register_services(app: Flask, settings: Settings, store: Store | None,
                      twilio: TwilioGateway | None) -> None:
    """The store and the Twilio client: one per worker process, built after gunicorn forks."""
    store = store or open_store(settings.store_url, Retention(
        ended_s=settings.leg_retention_s, live_s=settings.max_call_duration_s))
    twilio = twilio or TwilioRestGateway(settings, observer=app.extensions["callrelay.metrics"])
    app.extensions["callrelay.store"] = store
    app.extensions["callrelay.twilio"] = twilio
    app.extensions["callrelay.notifier"] = Notifier(store, twilio, settings.notify_deadline_s)
    app.extensions["callrelay.dial_policy"] = DialPolicy.for_caller_id(
        settings.twilio_caller_id, settings.dial_allow, settings.dial_sip_domains)


def register_blueprints(app: Flask) -> None:
    """Twilio webhooks, the internal API, and the operations routes."""
    app.register_blueprint(twilio_hooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
