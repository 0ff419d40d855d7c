"""An OpenAI-compatible HTTP server for tests, with fault injection.

Stdlib ``ThreadingHTTPServer`` on 127.0.0.1, port 0, in a daemon thread; serves
``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``. Rules are tried in order;
the first that matches a request answers it (a fixture response, a fixed text, a callable, or
by default an echo of the last message). A rule's faults are served first, in order, each
``times`` times (``times=None``: forever): an HTTP status with headers such as
``Retry-After``, a delay, a malformed body, or a dropped connection. Every request is
recorded (arrival and end times, headers, body), and the peak number of requests in flight is
tracked, so tests can assert attempts, concurrency and auth.

    with FakeOpenAIServer([Rule(faults=[Fault(429, retry_after="1")])]) as server:
        client = OpenAICompatClient(server.url, "fake-model", api_key_env="FAKE_KEY")
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def fake_tokens(text: str) -> list[str]:
    """Whitespace-attached word pieces: ``"a b"`` -> ``["a", " b"]`` (the fake server's tokens)."""
    return _TOKEN_RE.findall(text)


@dataclass
class Fault:
    """One injected failure. ``times`` consecutive matching requests get it (None = forever)."""

    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    malformed: bool = False
    drop: bool = False
    body: Any = None  # JSON-able object, or str/bytes sent verbatim (garbage bodies)
    times: int | None = 1


@dataclass
class Rule:
    """Match by model (fnmatch), regex on the last message / prompt, endpoint, or predicate.

    ``reply``: a text, a full response dict (recorded fixture JSON), or ``f(body) -> str|dict``;
    None echoes the last message. ``logprobs=False`` omits logprobs even when requested.
    """

    model: str | None = None
    pattern: str | None = None
    endpoint: str | None = None  # "chat" | "completions"
    when: Callable[[dict[str, Any]], bool] | None = None
    reply: str | dict[str, Any] | Callable[[dict[str, Any]], str | dict[str, Any]] | None = None
    faults: list[Fault] = field(default_factory=list)
    delay_s: float = 0.0
    logprobs: bool = True
    finish_reason: str = "stop"
    cached_tokens: int = 0
    _served: list[int] = field(default_factory=list, repr=False)  # per-fault use counts

    def matches(self, endpoint: str, body: dict[str, Any]) -> bool:
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        if self.model is not None and not fnmatch.fnmatchcase(
            str(body.get("model", "")), self.model
        ):
            return False
        if self.pattern is not None and not re.search(self.pattern, _last_text(body)):
            return False
        return self.when is None or bool(self.when(body))

    def next_fault(self) -> Fault | None:
        if len(self._served) != len(self.faults):
            self._served[:] = [0] * len(self.faults)
        for i, f in enumerate(self.faults):
            if f.times is None or self._served[i] < f.times:
                self._served[i] += 1
                return f
        return None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    t_start: float
    t_end: float = 0.0
    outcome: str = ""


def _last_text(body: dict[str, Any]) -> str:
    if "messages" in body and body["messages"]:
        content = body["messages"][-1].get("content", "")
        return content if isinstance(content, str) else json.dumps(content)
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _fake_logprob(i: int) -> float:
    return -0.05 * (i + 1)


class FakeOpenAIServer:
    """See the module docstring. Use as a context manager, or call ``start()``/``stop()``."""

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("fake-model",),
        latency_s: float = 0.0,
    ) -> None:
        self.rules: list[Rule] = list(rules)
        self.api_key = api_key
        self.models = list(models)
        self.latency_s = latency_s
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_concurrency = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() or use `with`")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- assertions helpers --------------------------------------------------------------------
    def completions_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("completions")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.peak_concurrency = 0
            for r in self.rules:
                r._served.clear()

    # -- answering -----------------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _choose(self, endpoint: str, body: dict[str, Any]) -> tuple[Rule | None, Fault | None]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(endpoint, body):
                    return rule, rule.next_fault()
        return None, None

    def build_response(
        self, endpoint: str, body: dict[str, Any], rule: Rule | None
    ) -> dict[str, Any]:
        reply = rule.reply if rule is not None else None
        if callable(reply):
            reply = reply(body)
        if isinstance(reply, dict):
            return reply
        text = f"echo: {_last_text(body)}" if reply is None else str(reply)
        tokens = fake_tokens(text)
        finish = rule.finish_reason if rule is not None else "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if max_tokens is not None and len(tokens) > int(max_tokens):
            tokens = tokens[: int(max_tokens)]
            text = "".join(tokens)
            finish = "length"
        prompt_chars = len(json.dumps(body.get("messages", body.get("prompt", ""))))
        usage = {
            "prompt_tokens": prompt_chars // 4 + 1,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_chars // 4 + 1 + len(tokens),
            "prompt_tokens_details": {"cached_tokens": rule.cached_tokens if rule else 0},
        }
        want_lp = bool(body.get("logprobs")) or (
            endpoint == "completions" and body.get("logprobs") == 0
        )
        give_lp = want_lp and (rule is None or rule.logprobs)
        created = int(time.time())
        model = body.get("model", "")
        if endpoint == "chat":
            lp = None
            if give_lp:
                k = int(body.get("top_logprobs") or 0)
                lp = {
                    "content": [
                        {
                            "token": t,
                            "logprob": _fake_logprob(i),
                            "bytes": list(t.encode()),
                            "top_logprobs": [
                                {"token": t, "logprob": _fake_logprob(i), "bytes": list(t.encode())}
                            ]
                            + [
                                {
                                    "token": f"<alt{j}>",
                                    "logprob": _fake_logprob(i) - j,
                                    "bytes": None,
                                }
                                for j in range(1, k)
                            ],
                        }
                        for i, t in enumerate(tokens)
                    ],
                    "refusal": None,
                }
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": lp,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            }
        clp: dict[str, Any] | None = None
        if give_lp:
            k = int(body.get("logprobs") or 0)
            offsets, pos = [], 0
            for t in tokens:
                offsets.append(pos)
                pos += len(t)
            clp = {
                "tokens": tokens,
                "token_logprobs": [_fake_logprob(i) for i in range(len(tokens))],
                "top_logprobs": [
                    {
                        t: _fake_logprob(i),
                        **{f"<alt{j}>": _fake_logprob(i) - j for j in range(1, k)},
                    }
                    for i, t in enumerate(tokens)
                ],
                "text_offset": offsets,
            }
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": clp, "finish_reason": finish}],
            "usage": usage,
        }


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per response

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
            return

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def do_GET(self) -> None:  # noqa: N802
            rec = RecordedRequest(
                "GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None, time.time()
            )
            with server._lock:
                server.requests.append(rec)
            if not self._authorised(rec):
                return
            if self.path.rstrip("/").endswith("/models"):
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in server.models]
                self._json(200, {"object": "list", "data": data})
                rec.outcome = "200"
            else:
                self._json(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )
                rec.outcome = "404"
            rec.t_end = time.time()

        def _authorised(self, rec: RecordedRequest) -> bool:
            if server.api_key is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._json(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                    }
                },
            )
            rec.outcome = "401"
            rec.t_end = time.time()
            return False

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            rec = RecordedRequest(
                "POST",
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                time.time(),
            )
            with server._lock:
                server.requests.append(rec)
                server.in_flight += 1
                server.peak_concurrency = max(server.peak_concurrency, server.in_flight)
            try:
                self._answer(rec, body)
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                rec.outcome = rec.outcome or "client-gone"
            finally:
                rec.t_end = time.time()
                with server._lock:
                    server.in_flight -= 1

        def _answer(self, rec: RecordedRequest, body: Any) -> None:
            if not self._authorised(rec):
                return
            path = self.path.rstrip("/")
            if path.endswith("/chat/completions"):
                endpoint = "chat"
            elif path.endswith("/completions"):
                endpoint = "completions"
            else:
                self._json(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )
                rec.outcome = "404"
                return
            if not isinstance(body, dict):
                self._json(
                    400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
                )
                rec.outcome = "400"
                return
            rule, fault = server._choose(endpoint, body)
            server._sleep(server.latency_s + (rule.delay_s if rule else 0.0))
            if fault is not None:
                server._sleep(fault.delay_s)
                if fault.drop:
                    rec.outcome = "dropped"
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault.malformed:
                    rec.outcome = "malformed"
                    self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"mess')
                    return
                if fault.status is not None:
                    headers = dict(fault.headers)
                    if fault.retry_after is not None:
                        headers["Retry-After"] = fault.retry_after
                    if fault.retry_after_ms is not None:
                        headers["retry-after-ms"] = fault.retry_after_ms
                    payload = fault.body or {
                        "error": {"message": f"injected fault {fault.status}", "type": "fake_fault"}
                    }
                    rec.outcome = str(fault.status)
                    if isinstance(payload, (bytes, str)):  # raw garbage, sent as is
                        raw = payload.encode() if isinstance(payload, str) else payload
                        self._send(fault.status, raw, headers)
                    else:
                        self._json(fault.status, payload, headers)
                    return
            response = server.build_response(endpoint, body, rule)
            rec.outcome = "200"
            self._json(200, response)

    return Handler


def response_from_completion(
    comp: Any, endpoint: str = "chat", model: str | None = None
) -> dict[str, Any]:
    """An OpenAI-format response body replaying a :class:`~lm_kit.llm.types.Completion`.

    Use it as ``Rule(reply=response_from_completion(local_completion))`` to serve what another
    backend (e.g. ``TransformersClient``) answered, logprobs and token counts included.
    """
    if endpoint not in ("chat", "completions"):
        raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
    usage = {
        "prompt_tokens": comp.prompt_tokens,
        "completion_tokens": comp.completion_tokens,
        "total_tokens": comp.prompt_tokens + comp.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": comp.cached_tokens},
    }
    lps = comp.logprobs
    name = model or comp.model or "fake-model"
    if endpoint == "chat":
        lp = None
        if lps is not None:
            lp = {
                "content": [
                    {
                        "token": t.token,
                        "logprob": t.logprob,
                        "bytes": list(t.token.encode()),
                        "top_logprobs": [
                            {"token": k, "logprob": v, "bytes": None} for k, v in t.top.items()
                        ],
                    }
                    for t in lps
                ],
                "refusal": None,
            }
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": comp.text},
            "logprobs": lp,
            "finish_reason": comp.finish_reason,
        }
        return {
            "id": "chatcmpl-replay",
            "object": "chat.completion",
            "created": 0,
            "model": name,
            "choices": [choice],
            "usage": usage,
        }
    clp = None
    if lps is not None:
        clp = {
            "tokens": [t.token for t in lps],
            "token_logprobs": [t.logprob for t in lps],
            "top_logprobs": [dict(t.top) for t in lps],
        }
    choice = {"index": 0, "text": comp.text, "logprobs": clp, "finish_reason": comp.finish_reason}
    return {
        "id": "cmpl-replay",
        "object": "text_completion",
        "created": 0,
        "model": name,
        "choices": [choice],
        "usage": usage,
    }
