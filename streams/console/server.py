"""``beckon console``: the rules console and its JSON API, beside the dashboard.

    beckon console     # http://localhost:8090/rules (and the dashboard at /)

The app is the dashboard's (``streams.dashboard.server.build_app``) with the console's
routes added, so ``beckon up`` serves both on one port. Every ``/api/`` route here needs
a principal: a ``Bearer`` token, or a session cookie (and, for a change, the session's
CSRF token). The rules in force and their history are read from Kafka on each request
(``streams.kafka.rules_topic``); a publish is one Kafka transaction. Previews run on a
thread each (``streams.console.preview``). docs/console.md has the API.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import BodyPartReader, web
from cachetools import TTLCache
from pydantic import SecretStr

from schemas.errors import BeckonError
from schemas.rules import RuleSet
from streams.clock import now_ms
from streams.console import drafts
from streams.console.auth import (
    Credentials,
    Principal,
    Sessions,
    SignInLimit,
    Users,
    csrf_ok,
    new_token,
)
from streams.console.drafts import DraftError
from streams.core.rulebook import RuleBook
from streams.core.rules import CompiledRules
from streams.dashboard import server as dashboard
from streams.kafka.rules_topic import publish_rules, read_history, read_rules
from streams.settings import Settings

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).resolve().parent / "static"
COOKIE: Final = "beckon_session"
MAX_BODY: Final = 256 * 1024 * 1024  # an uploaded recording for a preview
MAX_JOBS: Final = 1  # previews at once: one takes both cores (streams.console.preview)


class Job:
    """One preview running on its thread: progress, a cancel flag, then its answer."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.state = "running"
        self.done, self.total = 0, 0
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.cancel = threading.Event()

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "done": self.done, "total": self.total}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Console:
    """The console's state in the app: who may sign in, sessions, running previews."""

    settings: Settings
    credentials: Credentials
    funnel: Callable[[], list[dict[str, Any]]]
    sessions: Sessions = field(init=False)
    limit: SignInLimit = field(default_factory=SignInLimit)
    jobs: TTLCache[str, Job] = field(default_factory=lambda: TTLCache(maxsize=100, ttl=3600))

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.settings.console_session_hours * 3600)

    def running(self) -> int:
        return sum(job.state == "running" for job in self.jobs.values())


CONSOLE: Final = web.AppKey("console", Console)
PRINCIPAL: Final = web.RequestKey("principal", Principal)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- who is asking ------------------------------------------------------------------------


def _principal(request: web.Request, *, change: bool) -> Principal:
    """The principal of a request, or an HTTP error: 401 unknown, 403 CSRF missing."""
    console = request.app[CONSOLE]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        principal = console.credentials.by_token(token.strip()) if scheme == "Bearer" else None
        if principal is None:
            raise _fail(401, "the Authorization header must be 'Bearer <console token>'")
        return principal
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise _fail(401, "sign in first: POST /api/session, or a Bearer token")
    if change and not csrf_ok(session, request.headers.get("X-CSRF-Token")):
        raise _fail(403, "a change needs the session's CSRF token in X-CSRF-Token")
    return session.principal


def viewer(handler: Handler) -> Handler:
    """Any signed-in principal may read (and validate or preview: no change is made)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        _principal(request, change=request.method not in ("GET", "HEAD"))
        return await handler(request)

    return wrapped


def editor(handler: Handler) -> Handler:
    """Only an editor may change what visitors see."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        principal = _principal(request, change=True)
        if not principal.may_edit:
            raise _fail(403, f"{principal.name} is a viewer; publishing needs an editor")
        request[PRINCIPAL] = principal
        return await handler(request)

    return wrapped


def _fail(status: int, reason: str, **extra: Any) -> web.HTTPException:
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
           404: web.HTTPNotFound, 409: web.HTTPConflict, 413: web.HTTPRequestEntityTooLarge,
           422: web.HTTPUnprocessableEntity, 429: web.HTTPTooManyRequests,
           503: web.HTTPServiceUnavailable}[status]  # fmt: skip
    body = orjson.dumps({"error": reason, **extra})
    if status == 413:
        return web.HTTPRequestEntityTooLarge(MAX_BODY, 0, text=body.decode(),
                                             content_type="application/json")  # fmt: skip
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return cls(text=body.decode(), content_type="application/json", headers=headers)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _fail(400, f"the body is not JSON: {exc}") from exc


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _set_cookie(response: web.StreamResponse, request: web.Request, sid: str) -> None:
    settings = request.app[CONSOLE].settings
    response.set_cookie(
        COOKIE, sid, httponly=True, samesite="Strict", path="/",
        secure=settings.console_secure_cookie,
        max_age=int(settings.console_session_hours * 3600),
    )  # fmt: skip


# --- the page and signing in ----------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    """GET /rules: the page; ``?token=`` signs in and redirects to drop the token."""
    console = request.app[CONSOLE]
    if "token" in request.query:
        client = _client(request)
        if console.limit.retry_after(client):
            raise web.HTTPSeeOther("/rules?signin=limited")
        principal = console.credentials.by_token(request.query["token"])
        if principal is None:
            console.limit.failed(client)
            raise web.HTTPSeeOther("/rules?signin=failed")
        console.limit.succeeded(client)
        sid, _ = console.sessions.start(principal)
        response = web.HTTPSeeOther("/rules")
        _set_cookie(response, request, sid)
        raise response
    return web.FileResponse(STATIC / "rules.html", headers={"Cache-Control": "no-cache"})


async def sign_in(request: web.Request) -> web.Response:
    """POST /api/session: ``{token}`` or ``{user, password}``."""
    console, client = request.app[CONSOLE], _client(request)
    wait = console.limit.retry_after(client)
    if wait:
        error = _fail(429, f"too many failed sign-ins; try again in {wait} s")
        error.headers["Retry-After"] = str(wait)
        raise error
    body = await _body(request)
    principal = None
    if isinstance(body, dict) and isinstance(body.get("token"), str):
        principal = console.credentials.by_token(body["token"])
    elif isinstance(body, dict) and isinstance(body.get("user"), str):
        password = body.get("password")
        if isinstance(password, str):
            principal = await asyncio.to_thread(
                console.credentials.by_password, body["user"], password
            )
    if principal is None:
        console.limit.failed(client)
        log.info("console: a failed sign-in from %s", client)
        raise _fail(401, "wrong token, or wrong user name or password")
    console.limit.succeeded(client)
    sid, session = console.sessions.start(principal)
    log.info("console: %s signed in (%s)", principal.name, principal.role)
    response = _json({"user": principal.name, "role": principal.role, "csrf": session.csrf})
    _set_cookie(response, request, sid)
    return response


async def whoami(request: web.Request) -> web.Response:
    """GET /api/session: who the cookie (or token) belongs to, and the CSRF token."""
    console = request.app[CONSOLE]
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        principal = _principal(request, change=False)  # a Bearer token, or 401
        return _json({"user": principal.name, "role": principal.role, "csrf": None})
    p = session.principal
    return _json({"user": p.name, "role": p.role, "csrf": session.csrf})


async def sign_out(request: web.Request) -> web.Response:
    """DELETE /api/session."""
    _principal(request, change=True)
    request.app[CONSOLE].sessions.end(request.cookies.get(COOKIE))
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


# --- the rules ----------------------------------------------------------------------------


async def _book(settings: Settings) -> RuleBook:
    try:
        return await asyncio.to_thread(read_rules, settings)
    except BeckonError as exc:
        raise _fail(503, str(exc)) from exc


async def _in_force(settings: Settings) -> RuleSet:
    return (await _book(settings)).ruleset


async def _history(settings: Settings) -> list[dict[str, Any]]:
    try:
        return await asyncio.to_thread(read_history, settings)
    except BeckonError as exc:
        raise _fail(503, str(exc)) from exc


@viewer
async def rules_in_force(request: web.Request) -> web.Response:
    """GET /api/rules: the set in force (rules and queues), its history entry and its funnel."""
    console = request.app[CONSOLE]
    settings = console.settings
    book, history = await asyncio.gather(_book(settings), _history(settings))
    ruleset = book.ruleset
    published = next((e for e in reversed(history) if e["version"] == ruleset.version), None)
    funnel = {row["rule_id"]: row for row in console.funnel()}
    rules = drafts.rules_json(ruleset)
    return _json({
        "version": ruleset.version,
        "rules": rules,
        "queues": drafts.queues_json(ruleset),
        "words": {rule.id: drafts.in_words(rule) for rule in ruleset},
        "queue_words": drafts.queues_in_words(ruleset),
        "published": _without_rules(published),
        "funnel": funnel,
        "funnel_hours": settings.console_funnel_hours,
        "refused": book.refusals,
    })  # fmt: skip


def _without_rules(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {k: v for k, v in entry.items() if k not in ("rules", "queues")}  # the set it holds


@viewer
async def validate(request: web.Request) -> web.Response:
    """POST /api/rules/validate: 200 with the draft as Beckon reads it, or 422."""
    body = await _body(request)
    ruleset = _draft(body)
    rules, queues = drafts.rules_json(ruleset), drafts.queues_json(ruleset)
    sample = body.get("sample") if isinstance(body.get("sample"), dict) else None
    return _json({
        "version": ruleset.version,
        "rules": rules,
        "queues": queues,
        "yaml": drafts.rules_yaml(rules, queues),
        "rendered": drafts.rendered(ruleset, sample),
        "words": {rule.id: drafts.in_words(rule) for rule in ruleset},
        "queue_words": drafts.queues_in_words(ruleset),
    })  # fmt: skip


def _draft(body: Any) -> RuleSet:
    try:
        return drafts.parse_draft(body)
    except DraftError as exc:
        raise _fail(422, "the draft is not valid", errors=exc.errors) from exc


@editor
async def publish(request: web.Request) -> web.Response:
    """POST /api/rules/publish: the draft becomes the set in force, with its history entry."""
    body = await _body(request)
    ruleset = _draft(body)
    comment = body.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        missing = {"rule_id": None, "index": None, "path": "comment", "reason": "is required"}
        raise _fail(422, "a comment is required", errors=[missing])
    return await _publish(
        request, ruleset, comment.strip(), "publish", body.get("expected_version")
    )


@editor
async def rollback(request: web.Request) -> web.Response:
    """POST /api/rules/rollback: publish an earlier version's rules again."""
    body = await _body(request)
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str):
        raise _fail(422, "'version' is required")
    entry = next((e for e in reversed(await _history(request.app[CONSOLE].settings))
                  if e["version"] == version), None)  # fmt: skip
    if entry is None:
        raise _fail(404, f"no version {version!r} was ever published")
    # Entries from before budgets have no queues: the set had no budget then.
    ruleset = _draft({"rules": entry["rules"], "queues": entry.get("queues")})
    comment = body.get("comment") if isinstance(body.get("comment"), str) else ""
    comment = comment.strip() or f"rollback to {version}"
    return await _publish(request, ruleset, comment, "rollback", body.get("expected_version"))


async def _publish(
    request: web.Request, ruleset: RuleSet, comment: str, action: str, expected: Any
) -> web.Response:
    settings = request.app[CONSOLE].settings
    principal = request[PRINCIPAL]
    if isinstance(expected, str):
        in_force = await _in_force(settings)
        if in_force.version != expected:
            raise _fail(409, f"the rules in force are version {in_force.version}, not "
                        f"{expected}: someone published since; reload and try again",
                        version=in_force.version)  # fmt: skip
    try:
        published, deleted, entry = await asyncio.to_thread(
            publish_rules, settings, ruleset, author=principal.name, comment=comment,
            action=action,
        )  # fmt: skip
    except BeckonError as exc:
        raise _fail(503, str(exc)) from exc
    log.info("console: %s %s version %s (%d rules; published %s, deleted %s)",
             principal.name, action, ruleset.version, len(ruleset),
             ",".join(published) or "-", ",".join(deleted) or "-")  # fmt: skip
    return _json({"version": ruleset.version, "published": published, "deleted": deleted,
                  "entry": _without_rules(entry)})  # fmt: skip


@viewer
async def history(request: web.Request) -> web.Response:
    """GET /api/rules/history: every version, newest first, each with its difference."""
    entries = await _history(request.app[CONSOLE].settings)
    out, previous = [], None
    for entry in entries:
        out.append({**entry, "diff": _diff(previous, entry)})
        previous = entry
    return _json({"versions": out[::-1]})


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    old = {r["id"]: r for r in (before or {}).get("rules", ()) if isinstance(r, dict)}
    new = {r["id"]: r for r in after["rules"] if isinstance(r, dict)}
    old_queues, new_queues = _queues(before), _queues(after)
    text = difflib.unified_diff(
        drafts.rules_yaml(sorted(old.values(), key=_id), old_queues).splitlines(keepends=True),
        drafts.rules_yaml(sorted(new.values(), key=_id), new_queues).splitlines(keepends=True),
        fromfile=(before or {}).get("version", "(nothing)"), tofile=after["version"],
    )  # fmt: skip
    queues = old_queues.keys() | new_queues.keys()
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(k for k in new.keys() & old.keys() if new[k] != old[k]),
        "queues": sorted(k for k in queues if old_queues.get(k) != new_queues.get(k)),
        "text": "".join(text),
    }


def _queues(entry: dict[str, Any] | None) -> dict[str, Any]:
    queues = (entry or {}).get("queues")
    return dict(sorted(queues.items())) if isinstance(queues, dict) else {}


def _id(rule: dict[str, Any]) -> str:
    return str(rule.get("id"))


# --- preview ------------------------------------------------------------------------------


@viewer
async def preview(request: web.Request) -> web.Response:
    """POST /api/rules/preview: the draft and the set in force over recorded events."""
    from streams.console import capacity
    from streams.console import preview as engine

    console = request.app[CONSOLE]
    body, events, capacity_file = await _preview_request(request)
    draft = CompiledRules.of(_draft(body))
    source = body.get("source") if isinstance(body.get("source"), dict) else {}
    if events is None and isinstance(source.get("events"), str):
        events = source["events"].encode()
    if capacity_file is None and isinstance(source.get("capacity"), str):
        capacity_file = source["capacity"].encode()
    given = source.get("hours")
    hours = float(given) if isinstance(given, (int, float)) and given > 0 else 0.0
    if events is None and not hours:
        raise _fail(422, "source: give {'hours': N} or the events ('events', or a file part)")
    if events is None and capacity_file is not None:
        raise _fail(422, "source: a capacity recording goes with uploaded events; the last "
                    "N hours are previewed with the capacity topic's records")  # fmt: skip
    ceiling = console.settings.console_preview_max_events
    wanted = source.get("max_events", ceiling)
    max_events = min(int(wanted), ceiling) if isinstance(wanted, int) and wanted > 0 else ceiling
    if console.running() >= MAX_JOBS:
        raise _fail(503, f"{MAX_JOBS} previews are running; try again when one ends")
    in_force = CompiledRules.of(await _in_force(console.settings))
    job = Job(owner=_principal(request, change=False).name)
    job_id = secrets.token_urlsafe(12)
    console.jobs[job_id] = job
    settings, limits = console.settings, console.settings.limits()

    def work() -> None:
        try:
            progress, cancelled = job.progress, job.cancel.is_set
            if events is not None:
                lines: list[bytes] = events.splitlines()
                seen = capacity.uploaded(capacity_file.splitlines()) if capacity_file else None
            else:
                now = now_ms()
                seen = capacity.recent(settings, now - round(hours * 3_600_000), limits)
                lines = engine.read_recent(
                    settings, hours, max_events, progress=progress, cancelled=cancelled, now=now
                )
            job.result = engine.run_preview(
                lines,
                draft,
                in_force,
                limits,
                progress=progress,
                cancelled=cancelled,
                capacity=seen,
            )
            job.state = "done"
        except engine.PreviewCancelled:
            job.state = "cancelled"
        except BeckonError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # the job must end, and say why
            log.exception("console: a preview failed")
            job.state, job.error = "failed", f"the preview failed: {exc!r}"

    task = asyncio.ensure_future(asyncio.to_thread(work))
    if request.query.get("async") in ("1", "true"):
        return _json({"job": job_id}, status=202)
    try:
        await asyncio.shield(task)
    finally:
        if not task.done():  # the client went away: stop the work
            job.cancel.set()
    if job.state != "done":
        raise _fail(503 if job.state == "failed" else 409, job.error or job.state)
    return _json(job.result)


async def _preview_request(request: web.Request) -> tuple[Any, bytes | None, bytes | None]:
    """The JSON request and, from a multipart body, the uploaded events and capacity files."""
    if not request.content_type.startswith("multipart/"):
        return await _body(request), None, None
    body: Any = None
    events = capacity = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "request":
            try:
                body = orjson.loads(await part.read())
            except orjson.JSONDecodeError as exc:
                raise _fail(400, f"the 'request' part is not JSON: {exc}") from exc
        elif part.name == "events":
            events = bytes(await part.read())
        elif part.name == "capacity":
            capacity = bytes(await part.read())
    if not isinstance(body, dict):
        raise _fail(400, "a multipart preview needs a 'request' part holding the JSON")
    return body, events, capacity


@viewer
async def preview_job(request: web.Request) -> web.Response:
    """GET /api/rules/preview/{job}: progress, then the answer."""
    job = request.app[CONSOLE].jobs.get(request.match_info["job"])
    if job is None:
        raise _fail(404, "no such preview (they are kept for an hour)")
    return _json(job.view())


@viewer
async def cancel_job(request: web.Request) -> web.Response:
    """DELETE /api/rules/preview/{job}: stop it."""
    job = request.app[CONSOLE].jobs.get(request.match_info["job"])
    if job is None:
        raise _fail(404, "no such preview")
    job.cancel.set()
    return _json(job.view())


# --- the app ------------------------------------------------------------------------------


def add_console(
    app: web.Application, settings: Settings, funnel: Callable[[], list[dict[str, Any]]]
) -> Console:
    """Add the console's routes to ``app`` (the dashboard's, in ``build_app``)."""
    token = settings.console_token.get_secret_value() if settings.console_token else None
    users = Users.load(settings.console_users) if settings.console_users else None
    console = app[CONSOLE] = Console(settings, Credentials(token, users), funnel)
    app.router.add_get("/rules", page)
    app.router.add_static("/rules/static/", STATIC)
    app.router.add_post("/api/session", sign_in)
    app.router.add_get("/api/session", whoami)
    app.router.add_delete("/api/session", sign_out)
    app.router.add_get("/api/rules", rules_in_force)
    app.router.add_post("/api/rules/validate", validate)
    app.router.add_post("/api/rules/preview", preview)
    app.router.add_get("/api/rules/preview/{job}", preview_job)
    app.router.add_delete("/api/rules/preview/{job}", cancel_job)
    app.router.add_post("/api/rules/publish", publish)
    app.router.add_get("/api/rules/history", history)
    app.router.add_post("/api/rules/rollback", rollback)
    return console


def build_app(settings: Settings) -> web.Application:
    """The dashboard's app with the console: what ``beckon console`` serves."""
    app = dashboard.build_app(
        settings,
        client_max_size=MAX_BODY,
        funnel_lookback_s=settings.console_funnel_hours * 3600,
    )
    add_console(app, settings, lambda: dashboard.funnel_rows(app, long=True))
    return app


def run_console(settings: Settings) -> None:
    """Serve the console and the dashboard until SIGINT or SIGTERM."""
    url = None
    if settings.console_token is None and settings.console_users is None:
        token = new_token()
        settings = settings.model_copy(update={"console_token": SecretStr(token)})
        url = f"http://{settings.dashboard_host}:{settings.dashboard_port}/rules?token={token}"
    host, port = settings.dashboard_host, settings.dashboard_port

    def ready(_: str) -> None:
        print(f"dashboard: http://{host}:{port}/", flush=True)
        print(f"console:   http://{host}:{port}/rules", flush=True)
        if url is not None:
            # Printed once, to the terminal that started it (not logged), as notebook
            # servers do; set BECKON_CONSOLE_TOKEN or BECKON_CONSOLE_USERS to choose.
            print(f"sign in:   {url}", flush=True)

    web.run_app(build_app(settings), host=host, port=port, print=ready, access_log=None,
                shutdown_timeout=5)  # fmt: skip
