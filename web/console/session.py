"""Who may use the console: sign-in with a relay token, a signed session cookie, CSRF tokens and
the same-origin rule for forms.

Keys are derived from secrets callrelay already holds (no new variable): each relay token has
its own session key, HMAC(TWILIO_AUTH_TOKEN, token), so a session lives only as long as the
token it was opened with stays in RELAY_API_TOKENS, and rotating the auth token ends them all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

SESSION_COOKIE = "callrelay_console"
LOGIN_COOKIE = "callrelay_console_login"
FLASH_COOKIE = "callrelay_console_flash"
COOKIE_PATH = "/console"
SESSION_S = 12 * 3600
LOGIN_S = 3600  # how long a sign-in form stays usable
FLASH_S = 60
# Fetch metadata a browser sends with a form post from the console's own pages.
SAME_ORIGIN_SITES = ("same-origin", "none")


def _key(root: bytes, purpose: bytes) -> bytes:
    return hmac.new(root, purpose, hashlib.sha256).digest()


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in person: the CSRF token every form of theirs must carry."""

    csrf: str


class ConsoleAuth:
    """Opens and checks console sessions, sign-in form tokens and flash messages."""

    def __init__(self, relay_tokens: tuple[str, ...], auth_token: str,
                 public_base_url: str | None) -> None:
        root = _key(auth_token.encode(), b"callrelay console")
        self._tokens = tuple(t.encode() for t in relay_tokens)
        self._sessions = [URLSafeTimedSerializer(_key(root, b"session\0" + token),
                                                 salt="callrelay.console.session")
                          for token in self._tokens]
        self._login_key = _key(root, b"login")
        self._flash = URLSafeTimedSerializer(_key(root, b"flash"), salt="callrelay.console.flash")
        self._public_origin = _origin(public_base_url)

    def token_index(self, presented: str) -> int | None:
        """Which of RELAY_API_TOKENS `presented` is, compared in constant time; None if none."""
        given = presented.strip().encode()
        matches = [hmac.compare_digest(given, token) for token in self._tokens]
        return matches.index(True) if given and any(matches) else None

    def open_session(self, token_index: int) -> tuple[str, ConsoleSession]:
        """A new session for the token at `token_index`: the cookie value and the session."""
        session = ConsoleSession(csrf=secrets.token_urlsafe(32))
        return str(self._sessions[token_index].dumps({"csrf": session.csrf})), session

    def session(self, req: Request) -> ConsoleSession | None:
        """The request's session, if its cookie is signed by a current token and not expired."""
        cookie = req.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        for signer in self._sessions:
            try:
                payload = signer.loads(cookie, max_age=SESSION_S)
            except BadSignature:  # also SignatureExpired
                continue
            if isinstance(payload, dict) and isinstance(payload.get("csrf"), str):
                return ConsoleSession(csrf=payload["csrf"])
        return None

    def login_csrf(self, nonce: str) -> str:
        """The sign-in form's CSRF token for the nonce in the browser's LOGIN_COOKIE."""
        return hmac.new(self._login_key, nonce.encode(), hashlib.sha256).hexdigest()

    def login_csrf_valid(self, req: Request) -> bool:
        """True when the sign-in form's token matches the nonce cookie this browser holds."""
        nonce = req.cookies.get(LOGIN_COOKIE, "")
        given = req.form.get("csrf_token", "")
        return bool(nonce) and hmac.compare_digest(given.encode(),
                                                   self.login_csrf(nonce).encode())

    @staticmethod
    def csrf_valid(req: Request, session: ConsoleSession) -> bool:
        """True when the posted form carries the session's CSRF token."""
        given = req.form.get("csrf_token", "")
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    def same_origin(self, req: Request) -> bool:
        """False for a form posted from another origin (another site, or another port)."""
        site = req.headers.get("Sec-Fetch-Site")
        if site is not None and site not in SAME_ORIGIN_SITES:
            return False
        origin = req.headers.get("Origin")
        if origin is None:  # not a browser, or an old one: the CSRF token still decides
            return True
        # ProxyFix has applied X-Forwarded-Proto/-Host: this is the origin the browser used.
        return origin.lower() in {_origin(req.host_url), self._public_origin}

    def secure(self, req: Request) -> bool:
        """True behind https: the request's scheme (through ProxyFix), or PUBLIC_BASE_URL's."""
        return req.scheme == "https" or (self._public_origin or "").startswith("https:")

    def set_cookie(self, response: Response, req: Request, name: str, value: str,
                   max_age: int) -> None:
        """Set one of the console's cookies: HttpOnly, SameSite=Strict, Secure behind https."""
        response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                            samesite="Strict", secure=self.secure(req))

    def clear_cookie(self, response: Response, req: Request, name: str) -> None:
        """Remove one of the console's cookies."""
        response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="Strict",
                               secure=self.secure(req))

    def flash(self, response: Response, req: Request, kind: str, text: str) -> None:
        """Show `text` once, on the next page (a signed cookie, kept a minute at most)."""
        self.set_cookie(response, req, FLASH_COOKIE, str(self._flash.dumps([kind, text])),
                        FLASH_S)

    def flashed(self, req: Request) -> tuple[str, str] | None:
        """The message to show on this page, if any (the caller clears the cookie)."""
        cookie = req.cookies.get(FLASH_COOKIE)
        if not cookie:
            return None
        try:
            kind, text = self._flash.loads(cookie, max_age=FLASH_S)
        except (BadSignature, ValueError, TypeError):
            return None
        return str(kind), str(text)
