"""app.json (Heroku), render.yaml (Render), .python-version and .env.example stay true to the code.

The variable lists are derived from the code, so adding a variable to config/settings.py without
describing it in the deploy files fails here.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache

import yaml

from config import metrics_dir
from config.settings import Settings
from tests.e2e.harness import ROOT

# Read by callrelay but set by the platform: describing them would only invite breaking them.
PLATFORM_SET = {"PORT"}
_READER_CALL = re.compile(r"\breader\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"")
_ENVIRON_READ = re.compile(r"\benviron(?:\.get\(|\[)\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
_COMMENTED_KEY = re.compile(r"^\s*#\s*- key: ([A-Z][A-Z0-9_]*)", re.MULTILINE)


@cache
def settings_variables() -> frozenset[str]:
    """Every variable Settings.from_env reads, found by scanning config/settings.py."""
    names = frozenset(_READER_CALL.findall((ROOT / "config" / "settings.py").read_text()))
    assert {"TWILIO_ACCOUNT_SID", "RELAY_API_TOKENS", "STORE_URL", "REDIS_URL"} <= names
    return names


def runtime_variables() -> set[str]:
    """Every variable the service reads: Settings', gunicorn's, the app's and the metrics'."""
    sources = [ROOT / "app.py", *sorted((ROOT / "config").glob("*.py"))]
    names = {n for path in sources for n in _ENVIRON_READ.findall(path.read_text())}
    return (names | settings_variables() | {metrics_dir.ENV}) - PLATFORM_SET


def procfile_web() -> str:
    (line,) = [x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:")]
    return line.removeprefix("web:").strip()


def test_scan_finds_gunicorn_and_app_variables():
    assert {"WEB_CONCURRENCY", "GUNICORN_CONNECTIONS", "LOG_LEVEL"} <= runtime_variables()


def test_app_json_describes_every_variable_and_generates_the_relay_token():
    app = json.loads((ROOT / "app.json").read_text())
    env = app["env"]
    missing = runtime_variables() - set(env)
    assert not missing, f"describe these in app.json: {sorted(missing)}"
    assert not PLATFORM_SET & set(env)
    assert all(spec.get("description") for spec in env.values())
    assert env["RELAY_API_TOKENS"]["generator"] == "secret"
    required = {name for name, spec in env.items() if spec.get("required", True)
                and "generator" not in spec and "value" not in spec}
    assert required == {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}
    assert app["formation"]["web"]["quantity"] >= 1
    assert app["success_url"] == "/readyz"


def test_render_yaml_runs_the_procfile_command_and_describes_every_variable():
    text = (ROOT / "render.yaml").read_text()
    blueprint = yaml.safe_load(text)
    (web,) = [s for s in blueprint["services"] if s["type"] == "web"]
    assert web["runtime"] == "python" and web["healthCheckPath"] == "/readyz"
    assert web["buildCommand"] == "pip install -r requirements.txt"
    assert shlex.split(web["startCommand"]) == shlex.split(procfile_web())
    env = {v["key"]: v for v in web["envVars"]}
    assert env["RELAY_API_TOKENS"] == {"key": "RELAY_API_TOKENS", "generateValue": True}
    assert env["TWILIO_AUTH_TOKEN"].get("sync") is False
    assert all("value" not in v or isinstance(v["value"], str) for v in env.values())
    described = set(env) | set(_COMMENTED_KEY.findall(text))
    missing = runtime_variables() - described
    assert not missing, f"describe these in render.yaml: {sorted(missing)}"
    assert not PLATFORM_SET & described


def test_python_version_is_pinned_the_way_heroku_and_render_read_it():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), "major.minor only: both platforms take the latest patch"
    assert tuple(map(int, version.split("."))) >= (3, 11)


def test_env_example_is_a_development_config_without_a_token():
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values["RELAY_API_TOKENS"] == ""  # scripts/run generates one
    assert values["TWILIO_API_BASE_URL"].startswith("http://127.0.0.1:")
    assert set(values) <= runtime_variables()
    Settings.from_env({**values, "RELAY_API_TOKENS": "x" * 32})  # valid once a token is added
