"""The console's Starlette app, built by :func:`create_app` (no module-level app).

Pages are small HTML shells (:mod:`control.console.pages`) that ``static/console.js`` fills from the JSON data
endpoints below; every asset is served from this package (no CDN) under a strict Content-Security-Policy.

=====================================  ======  =============================================================
path                                   method  what
=====================================  ======  =============================================================
``/``, ``/models``, ``/rollouts``,     GET     the pages (Overview, Models, Rollouts, Drift, Try it)
``/drift``, ``/try``
``/drift/reports/{run_id}``            GET     one drift report's own HTML page
``/login``, ``/logout``                GET     sign in with the token (form), sign out (POST)
                                       POST
``/api/environments``                  GET     environments, the session, which actions exist
``/api/overview?environment=``         GET     tracks with version, share, replicas, req/s, errors, latency
                                               (now and over time), drift and quality verdicts, the rollout in
                                               progress, the class mix over time
``/api/models``                        GET     registry versions, aliases, gate, holdout and live metrics, links
``/api/rollouts?environment=``         GET     rollout decisions with their checks, actions started here
``/api/drift?environment=``            GET     drift reports (newest first) and signal trends per version and track
``/api/predict``                       POST    Try it: ``{environment, track, text}`` -> label, probabilities, id
``/api/feedback``                      POST    action: ``{environment, track, prediction_id, label}``
``/api/rollouts/{start|promote|        POST    action: ``{environment, version}``
rollback}``
``/healthz``                           GET     liveness and readiness
=====================================  ======  =============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from control.console import pages
from control.console.auth import SESSION_COOKIE, Auth, Denied
from control.console.settings import ConsoleSettings
from control.console.sources import Sources, build_sources
from control.console.sources import rollouts as rollout_records
from control.console.sources.actions import ActionRefused
from control.console.sources.predictor import UpstreamError
from control.console.sources.reports import latest_verdicts, trends
from model.errors import KubeSentimentError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Longest text Try it sends (the predictor's own default limit).
MAX_TEXT = 5000
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: The drift report is a self-contained page with inline styles and data-URI plots, and no script.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


class BadRequest(Exception):
    """A 400 naming what was wrong."""


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("content-security-policy", CSP)
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "same-origin"
        response.headers["x-frame-options"] = "DENY"
        if request.url.path.startswith(("/api/", "/login")):
            response.headers["cache-control"] = "no-store"
        return response


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise BadRequest(f"the body is not JSON ({e}); send a JSON object") from e
    if not isinstance(body, dict):
        raise BadRequest(f"the body is {type(body).__name__}; send a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name!r} is missing or not a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{name!r} has {len(value)} characters; at most {limit} are accepted")
    return value


def create_app(settings: ConsoleSettings, sources: Sources | None = None, token: str | None = None) -> Starlette:
    """The console app. ``sources`` default to :func:`build_sources` (settings); ``token`` to the token file's."""
    from control.console.auth import read_token

    src = sources or build_sources(settings)
    auth = Auth(token if token is not None else read_token(settings.token_file), settings.read_requires_token,
                settings.secure_cookies, settings.session_hours)

    def guarded(handler: Callable[[Request], Awaitable[Response]], *, action: bool = False,
                page: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Apply the read or action check and map errors to clear 4xx/5xx answers."""

        async def endpoint(request: Request) -> Response:
            try:
                if action:
                    auth.check_action(request)
                else:
                    auth.check_read(request)
                return await handler(request)
            except Denied as e:
                log.info("%s %s refused (%d): %s", request.method, request.url.path, e.status, e.message)
                if page and e.status == 401:
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                headers = {"www-authenticate": 'Bearer realm="kube-sentiment console"'} if e.status == 401 else {}
                return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)
            except BadRequest as e:
                log.info("%s %s: 400 %s", request.method, request.url.path, e)
                return _error(400, str(e))
            except (UpstreamError, ActionRefused) as e:
                log.warning("%s %s: %d %s", request.method, request.url.path, e.status, e.message)
                return _error(e.status, e.message)
            except KubeSentimentError as e:
                log.warning("%s %s: source unavailable: %s", request.method, request.url.path, e)
                return _error(503, str(e))

        return endpoint

    # --- helpers over the sources ---------------------------------------------------------------------------------
    async def environments() -> list[str]:
        return await run_in_threadpool(src.serving.environments)

    async def environment_of(request: Request) -> str:
        known = await environments()
        wanted = request.query_params.get("environment")
        if wanted is None:
            if not known:
                raise BadRequest("no environment is configured (KS_CONSOLE_PREDICTORS or KS_CONSOLE_NAMESPACES)")
            return known[0]
        if wanted not in known:
            raise BadRequest(f"unknown environment {wanted!r}; choose one of {known}")
        return wanted

    async def series(environment: str) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        if src.prometheus is not None:
            try:
                return "prometheus", await src.prometheus.series(src.namespaces.get(environment, environment))
            except Exception as e:  # Prometheus down: say so, show the rest
                log.warning("Prometheus query failed: %s", e)
                return f"prometheus unavailable: {e}", {}
        assert src.scraper is not None
        return "predictors' /metrics", src.scraper.series(environment)

    def registry_versions() -> list[dict[str, Any]]:
        return src.registry.versions() if src.registry is not None else []

    # --- pages ----------------------------------------------------------------------------------------------------
    def page(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def render(request: Request) -> Response:
            return HTMLResponse(pages.render(name, signed_in=auth.signed_in(request),
                                             actions_enabled=auth.actions_enabled))

        return guarded(render, page=True)

    async def report(request: Request) -> Response:
        path = src.reports.html_path(request.path_params["run_id"])
        if path is None:
            return _error(404, f"no drift report {request.path_params['run_id']!r}")
        response = FileResponse(path, media_type="text/html; charset=utf-8")
        response.headers["content-security-policy"] = REPORT_CSP
        return response

    async def login_form(request: Request) -> Response:
        return HTMLResponse(pages.login(error=None, next_path=request.query_params.get("next", "/"),
                                        actions_enabled=auth.actions_enabled))

    async def login(request: Request) -> Response:
        try:
            auth.check_same_origin(request)
        except Denied as e:
            return _error(e.status, e.message)
        form = await request.form()
        next_path = str(form.get("next") or "/")
        if not next_path.startswith("/") or next_path.startswith("//"):
            next_path = "/"
        if not auth.actions_enabled:
            return HTMLResponse(pages.login("this console has no token: it is read-only", next_path, False), 403)
        if not auth.login_allowed():
            return HTMLResponse(pages.login("too many failed sign-ins; wait a minute", next_path, True), 429)
        if not auth.token_matches(str(form.get("token") or "")):
            auth.failed()
            log.warning("failed sign-in from %s", request.client.host if request.client else "?")
            return HTMLResponse(pages.login("that is not the console token", next_path, True), 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.new_session(), max_age=int(settings.session_hours * 3600),
                            httponly=True, samesite="strict", secure=settings.secure_cookies, path="/")
        log.info("signed in from %s", request.client.host if request.client else "?")
        return response

    async def logout(request: Request) -> Response:
        try:
            auth.check_same_origin(request)
        except Denied as e:
            return _error(e.status, e.message)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- data endpoints -------------------------------------------------------------------------------------------
    async def api_environments(request: Request) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        signed_in = auth.signed_in(request)
        return JSONResponse({
            "environments": await environments(),
            "signed_in": signed_in,
            "actions_enabled": auth.actions_enabled,
            "csrf_token": auth.csrf_token(session) if signed_in and session and auth.session_valid(session) else None,
            "rollout_actions": src.actions.available(),
            "metrics_source": "prometheus" if src.prometheus is not None else "predictors' /metrics",
        })

    async def api_overview(request: Request) -> Response:
        environment = await environment_of(request)
        tracks = await run_in_threadpool(src.serving.tracks, environment)
        lock = await run_in_threadpool(src.serving.lock, environment)
        source, by_track = await series(environment)
        summaries = await run_in_threadpool(src.reports.summaries, environment)
        verdicts = latest_verdicts(summaries)
        rows = []
        for t in tracks:
            points = by_track.get(t.track, [])
            verdict = verdicts.get((t.model_version or "", t.track), {})
            rows.append(t.as_dict() | {"current": points[-1] if points else None, "series": points,
                                       "drift": verdict.get("drift"), "drift_run_id": verdict.get("drift_run_id"),
                                       "quality": verdict.get("quality"), "live_macro_f1": verdict.get("macro_f1")})
        decisions = await rollout_decisions(environment)
        mix: dict[str, Any] | None = None
        mix_error = None
        if src.class_mix is not None:
            try:
                mix = await run_in_threadpool(src.class_mix.get, environment)
            except KubeSentimentError as e:
                mix_error = str(e)
        return JSONResponse({
            "environment": environment, "tracks": rows, "metrics_source": source,
            "rollout": {"lock": lock, "latest": decisions[-1] if decisions else None,
                        "in_progress": lock is not None or (bool(decisions) and decisions[-1]["decision"] in
                                                            ("started", "resumed", "advance", "hold"))},
            "latest_drift": summaries[0] if summaries else None,
            "class_mix": mix, "class_mix_error": mix_error,
        })

    async def api_models(request: Request) -> Response:
        versions = await run_in_threadpool(registry_versions)
        summaries = await run_in_threadpool(src.reports.summaries, None)
        live: dict[str, dict[str, Any]] = {}
        for summary in summaries:  # newest first
            for g in (summary.get("quality") or {}).get("groups", []):
                entry = live.setdefault(str(g.get("model_version")), {})
                entry.setdefault(str(g.get("track")), {"macro_f1": g.get("macro_f1"), "ci_low": g.get("ci_low"),
                                                       "ci_high": g.get("ci_high"), "verdict": g.get("verdict"),
                                                       "labelled": g.get("labelled"), "run_id": summary["run_id"]})
        return JSONResponse({
            "registered_model": settings.registered_model,
            "configured": src.registry is not None,
            "mlflow_ui": (settings.mlflow_ui_url or settings.tracking_uri),
            "versions": [v | {"live": live.get(v["version"], {})} for v in versions],
        })

    async def rollout_decisions(environment: str | None) -> list[dict[str, Any]]:
        versions = await run_in_threadpool(registry_versions)
        envs = [environment] if environment else await environments()
        events = []
        for env in envs:
            events.extend(rollout_records.from_events(env, await run_in_threadpool(src.serving.events, env)))
        logs = await run_in_threadpool(rollout_records.from_logs, list(settings.rollout_logs))
        merged = rollout_records.merge(rollout_records.from_registry(versions), events, logs)
        return [d for d in merged if environment is None or d["environment"] == environment]

    async def api_rollouts(request: Request) -> Response:
        environment = await environment_of(request)
        lock = await run_in_threadpool(src.serving.lock, environment)
        return JSONResponse({"environment": environment, "decisions": await rollout_decisions(environment),
                             "lock": lock, "available_actions": src.actions.available(),
                             "actions": [a for a in src.actions.history() if a["environment"] == environment]})

    async def api_drift(request: Request) -> Response:
        environment = await environment_of(request)
        summaries = await run_in_threadpool(src.reports.summaries, environment)
        return JSONResponse({"environment": environment, "reports": summaries, "trends": trends(summaries),
                             "configured": bool(settings.drift_dirs)})

    async def endpoint_of(environment: str, track: str) -> str:
        tracks = await run_in_threadpool(src.serving.tracks, environment)
        match = next((t for t in tracks if t.track == track), None)
        if match is None:
            raise BadRequest(f"environment {environment!r} has no track {track!r}; tracks: "
                             f"{[t.track for t in tracks]}")
        if not match.endpoints:
            raise UpstreamError(503, f"no ready predictor serves {environment}/{track}")
        return match.endpoints[0]

    async def api_predict(request: Request) -> Response:
        Auth.check_same_origin(request)
        body = await _body(request)
        environment = _text_field(body, "environment")
        if environment not in await environments():
            raise BadRequest(f"unknown environment {environment!r}")
        text = _text_field(body, "text", MAX_TEXT)
        url = await endpoint_of(environment, _text_field(body, "track"))
        result = await src.predictor.predict(url, text)
        return JSONResponse(result | {"environment": environment, "track": body["track"]})

    async def api_feedback(request: Request) -> Response:
        body = await _body(request)
        environment = _text_field(body, "environment")
        if environment not in await environments():
            raise BadRequest(f"unknown environment {environment!r}")
        url = await endpoint_of(environment, _text_field(body, "track"))
        result = await src.predictor.feedback(url, _text_field(body, "prediction_id", 300),
                                              _text_field(body, "label"))
        log.info("feedback sent for %s: %s", result["prediction_id"], result["label"])
        return JSONResponse(result, status_code=202)

    async def api_rollout_action(request: Request) -> Response:
        body = await _body(request)
        environment = _text_field(body, "environment")
        version = body.get("version")
        record = src.actions.run(request.path_params["action"], environment,
                                 None if version is None else str(version), await environments())
        return JSONResponse(record, status_code=202)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(src.scraper.run()) if src.scraper is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [
        Route("/", page("overview"), methods=["GET"]),
        Route("/models", page("models"), methods=["GET"]),
        Route("/rollouts", page("rollouts"), methods=["GET"]),
        Route("/drift", page("drift"), methods=["GET"]),
        Route("/try", page("try"), methods=["GET"]),
        Route("/drift/reports/{run_id}", guarded(report, page=True), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/environments", guarded(api_environments), methods=["GET"]),
        Route("/api/overview", guarded(api_overview), methods=["GET"]),
        Route("/api/models", guarded(api_models), methods=["GET"]),
        Route("/api/rollouts", guarded(api_rollouts), methods=["GET"]),
        Route("/api/drift", guarded(api_drift), methods=["GET"]),
        Route("/api/predict", guarded(api_predict), methods=["POST"]),
        Route("/api/feedback", guarded(api_feedback, action=True), methods=["POST"]),
        Route("/api/rollouts/{action}", guarded(api_rollout_action, action=True), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)], lifespan=lifespan)
    app.state.auth = auth
    app.state.sources = src
    return app
