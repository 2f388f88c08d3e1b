"""The web console at /console: sign-in, the guard every page and form passes, and the headers
every answer carries. The pages and the forms' actions are in pages.py and actions.py."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, url_for

from config.settings import Settings
from services.errors import RelayError
from web.console.actions import register_actions
from web.console.pages import register_pages
from web.console.parts import ConsoleParts
from web.console.session import (
    FLASH_COOKIE,
    LOGIN_COOKIE,
    LOGIN_S,
    SESSION_COOKIE,
    SESSION_S,
    ConsoleAuth,
)

log = logging.getLogger("callrelay.console")

# No inline script or style anywhere: every script and stylesheet is a file under /console/static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
PUBLIC_ENDPOINTS = {"console.login", "console.static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _is_api() -> bool:
    return (request.endpoint or "").startswith("console.api_")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if (value and value.startswith("/console") and not value.startswith("/console/login")
            and "\\" not in value and not any(c in value for c in "\r\n\t")):
        return value
    return "/console"


def wants_page() -> bool:
    """True for a browser (it prefers HTML); anything else gets the API's JSON errors."""
    accept = request.accept_mimetypes
    return accept.accept_html and accept.quality("text/html") > accept.quality("application/json")


REFUSALS = {
    "cross_origin": "The form was posted from another site or address than this console's. "
                    "Nothing was changed.",
    "csrf": "The form did not carry this session's form token (it is stale, or did not come "
            "from a console page). Nothing was changed.",
}


def refused(reason: str) -> Any:
    """The answer to a form that did not come from this console (403): a page for a browser,
    a JSON error otherwise."""
    log.warning("console form refused", extra={"reason": reason, "path": request.path})
    if not wants_page():
        return jsonify({"error": {"code": f"{reason}_refused", "message": REFUSALS[reason]}}), 403
    return render_template("console/refused.html", reason=reason), 403


def console_blueprint(settings: Settings, parts: ConsoleParts) -> Blueprint:
    """/console and the pages under it, behind a signed-in session."""
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static")
    auth = ConsoleAuth(settings.relay_api_tokens, settings.twilio_auth_token,
                       settings.public_base_url)

    @bp.before_request
    def guard() -> Any:
        unsafe = request.method not in SAFE_METHODS
        if unsafe and not auth.same_origin(request):
            return refused("cross_origin")
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        session = auth.session(request)
        if session is None:
            if _is_api():
                return jsonify({"error": {"code": "unauthorized", "message":
                                          "Sign in to the console again."}}), 401
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("console.login", next=target), 303)
        if unsafe and not auth.csrf_valid(request, session):
            return refused("csrf")
        g.console_session = session
        return None

    @bp.after_request
    def headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        if request.endpoint != "console.static":
            response.headers["Cache-Control"] = "no-store"
        shown = request.method == "GET" and response.status_code < 300 and not _is_api()
        if shown and FLASH_COOKIE in request.cookies and request.endpoint != "console.static":
            auth.clear_cookie(response, request, FLASH_COOKIE)  # shown once
        return response

    @bp.context_processor
    def page_context() -> dict[str, Any]:
        session = g.get("console_session")
        return {"csrf_token": session.csrf if session else "", "signed_in": session is not None,
                "flash": auth.flashed(request), "store_kind": parts.store_kind,
                "forwarding_on": parts.forwarding is not None}

    @bp.errorhandler(RelayError)
    def relay_error(exc: RelayError) -> Any:
        if _is_api() or not wants_page():
            response = jsonify(exc.to_json())
            response.status_code = exc.status
            return response
        return render_template("console/error.html", error=exc), exc.status

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        """The sign-in form: a relay token opens a session for SESSION_S."""
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        target = safe_next(request.values.get("next"))
        error = None
        if request.method == "POST":
            if not auth.login_csrf_valid(request):
                return refused("csrf")
            index = auth.token_index(request.form.get("token", ""))
            if index is not None:
                cookie, _ = auth.open_session(index)
                response = redirect(target, 303)
                auth.set_cookie(response, request, SESSION_COOKIE, cookie, SESSION_S)
                auth.clear_cookie(response, request, LOGIN_COOKIE)
                log.info("console sign-in")
                return response
            log.warning("console sign-in refused: not one of RELAY_API_TOKENS")
            error = "That is not one of the relay tokens (RELAY_API_TOKENS)."
        elif auth.session(request) is not None:
            return redirect(target, 303)
        page = render_template("console/login.html", login_csrf=auth.login_csrf(nonce),
                               next=target, error=error)
        response = Response(page, status=401 if error else 200)
        auth.set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_S)
        return response

    @bp.post("/logout")
    def logout() -> Any:
        """End this browser's session."""
        response = redirect(url_for("console.login"), 303)
        auth.clear_cookie(response, request, SESSION_COOKIE)
        return response

    register_pages(bp, parts)
    register_actions(bp, parts, auth)
    return bp
