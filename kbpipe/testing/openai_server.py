"""A small OpenAI-compatible chat server on 127.0.0.1 with switchable faults.

The tests and the benchmark talk to this instead of a paid API: it answers
`POST /v1/chat/completions` after `latency_ms`, and can be told to misbehave
the way real endpoints do: 429 with Retry-After, 500, a hang past the client's
timeout, a dropped connection, malformed JSON, an answer without tags, 401;
go down for good after some requests (`down_after`); or quote the caller's
Authorization header in its error bodies (`echo_auth`), as careless servers do.

Faults are deterministic per message: the n-th time the server sees the same
request body it draws from `Random((seed, body hash, n))`, and only the first
`faults_per_message` sightings can fault, so a client that retries always gets
through in the end. Stats (requests, outcomes, peak in-flight) count what the
server saw, which is what a paid API would bill.

`reply` and `reasoning` make it answer like a model served by vLLM with a
reasoning parser instead: `reply` is the message content and `reasoning` goes
to `message.reasoning_content`; `make_vfeval_fixtures.sh` points the real
`vf-eval` at it this way.

In-process (tests): `with ServerThread(Behaviour(latency_ms=50)) as server: server.url`.
Own process (benchmarks, so client and server do not share a core):
`python -m kbpipe.testing.openai_server --latency-ms 100` prints `URL=...` and serves
until killed; `GET /admin/stats` returns the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from kbpipe.config import DIFFICULTY_LEVELS

FAULTS = ("429", "500", "hang", "drop", "malformed", "notag", "400", "401")


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    # fault name -> probability on each of a message's first `faults_per_message` sightings
    faults: dict[str, float] = field(default_factory=dict)
    faults_per_message: int = 1
    seed: int = 0
    retry_after_s: float = 0.05
    hang_s: float = 30.0
    # Every request gets this status (e.g. 401 for a bad key) when set.
    force_status: int | None = None
    # Answer as a rollout model: this content, and this reasoning_content (vLLM's field).
    reply: str | None = None
    reasoning: str | None = None
    # Error bodies quote the request's Authorization header, as careless servers do.
    echo_auth: bool = False
    # After this many requests the endpoint "goes down": every later one gets `down_fault`.
    down_after: int | None = None
    down_fault: str = "500"


@dataclass
class Stats:
    requests: int = 0
    inflight: int = 0
    max_inflight: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    # body hash -> proper answers sent for it: more than one is an answer paid twice.
    answered: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "max_inflight": self.max_inflight,
            "inflight": self.inflight,
            "outcomes": dict(self.outcomes),
            "distinct_bodies": len(self.seen),
        }


def answer_text(body_hash: str) -> str:
    """A deterministic answer carrying both task tags; each parser takes its own."""
    level = DIFFICULTY_LEVELS[int(body_hash[:8], 16) % 3]
    return (
        f"The module is rated by the test server.\n<difficulty>{level}</difficulty>\n"
        f"<specification>\nTask {body_hash[:12]}: implement the module in Triton.\n"
        "</specification>"
    )


class FakeOpenAI:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self._routes = {
            ("POST", "/v1/chat/completions"): self.chat,
            ("GET", "/admin/stats"): self.get_stats,
            ("GET", "/v1/models"): self.models,
            ("POST", "/admin/behaviour"): self.set_behaviour,
            ("POST", "/admin/reset"): self.reset,
        }

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # A low-level server with a dict for routing: the web.Application router and
        # middleware chain cost more CPU per request than the client we benchmark.
        route = self._routes.get((request.method, request.path))
        if route is None:
            self.stats.outcomes["no_route"] += 1
            return web.Response(status=404, text=f"no route {request.method} {request.path}")
        return await route(request)

    def _fault(self, body_hash: str, sighting: int) -> str | None:
        b = self.behaviour
        if not b.faults or sighting >= b.faults_per_message:
            return None
        draw = random.Random(f"{b.seed}:{body_hash}:{sighting}").random()
        for name, p in b.faults.items():
            if draw < p:
                return name
            draw -= p
        return None

    async def chat(self, request: web.BaseRequest) -> web.StreamResponse:
        st = self.stats
        st.requests += 1
        st.inflight += 1
        st.max_inflight = max(st.max_inflight, st.inflight)
        try:
            return await self._answer(request)
        finally:
            st.inflight -= 1

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        b = self.behaviour
        raw = await request.read()
        body_hash = hashlib.sha1(raw).hexdigest()
        sighting = self.stats.seen[body_hash]
        self.stats.seen[body_hash] += 1
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        said = f"; you sent Authorization: {request.headers.get('Authorization')}"
        said = said if b.echo_auth else ""
        if b.force_status is not None:
            return self._error(b.force_status, "forced status" + said)
        fault = self._fault(body_hash, sighting)
        if b.down_after is not None and self.stats.requests > b.down_after:
            fault = b.down_fault
        if fault == "hang":
            self.stats.outcomes["hang"] += 1
            await asyncio.sleep(b.hang_s)
        elif fault == "drop":
            self.stats.outcomes["drop"] += 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        elif fault == "malformed":
            self.stats.outcomes["malformed"] += 1
            return web.Response(
                body=b'{"choices": [{"message": {"content": "trunc', content_type="application/json"
            )
        elif fault in ("400", "401", "429", "500"):
            return self._error(int(fault), f"injected {fault}{said}")
        request_body = json.loads(raw)
        messages = request_body.get("messages", [])
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        if fault == "notag":
            self.stats.outcomes["notag"] += 1
            text = "I think this one is fairly simple, but I forgot the tags."
        else:
            self.stats.outcomes["200"] += 1
            self.stats.answered[body_hash] += 1
            text = b.reply if b.reply is not None else answer_text(body_hash)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if b.reasoning is not None:
            message["reasoning_content"] = b.reasoning
        payload = {
            "id": f"chatcmpl-{body_hash[:16]}",
            "object": "chat.completion",
            # Required by the openai SDK's ChatCompletion model; fixed so answers are reproducible.
            "created": 0,
            "model": request_body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": message,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(text) // 4,
                "total_tokens": prompt_chars // 4 + len(text) // 4,
            },
        }
        if request_body.get("stream"):
            return await _stream(request, payload)
        return web.Response(body=json.dumps(payload).encode(), content_type="application/json")

    def _error(self, status: int, message: str) -> web.Response:
        self.stats.outcomes[str(status)] += 1
        headers = {"Retry-After": f"{self.behaviour.retry_after_s:g}"} if status == 429 else None
        body = json.dumps({"error": {"message": message, "code": status}}).encode()
        return web.Response(
            status=status, body=body, headers=headers, content_type="application/json"
        )

    async def models(self, request: web.BaseRequest) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "test", "object": "model"}]})

    async def get_stats(self, request: web.BaseRequest) -> web.Response:
        return web.json_response(self.stats.to_dict())

    async def set_behaviour(self, request: web.BaseRequest) -> web.Response:
        self.behaviour = Behaviour(**await request.json())
        return web.json_response(asdict(self.behaviour))

    async def reset(self, request: web.BaseRequest) -> web.Response:
        self.stats = Stats()
        return web.json_response({})


async def _stream(request: web.BaseRequest, payload: dict[str, Any]) -> web.StreamResponse:
    """The same answer as server-sent events, as vLLM streams it: the message as one
    delta, then the finish reason, the usage, and [DONE] (agent harnesses stream)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    head = {k: payload[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = payload["choices"][0]
    chunks = [
        {**head, "choices": [{"index": 0, "delta": choice["message"], "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
        {**head, "choices": [], "usage": payload["usage"]},
    ]
    for chunk in chunks:
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


class ServerThread:
    """Run a FakeOpenAI on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.server = FakeOpenAI(behaviour)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def stats(self) -> Stats:
        return self.server.stats

    def set(self, **changes: Any) -> None:
        self.server.behaviour = Behaviour(**{**asdict(self.server.behaviour), **changes})

    def reset_stats(self) -> None:
        self.server.stats = Stats()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> int:
        self._runner, port = await start(self.server, port=0)
        return port

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def start(server: FakeOpenAI, *, port: int = 0) -> tuple[web.ServerRunner, int]:
    # handler_cancellation: a client that gives up on a hang frees the handler at once.
    low_level = web.Server(server.handle, access_log=None, handler_cancellation=True)
    runner = web.ServerRunner(low_level, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    return runner, sockets[0].getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--reply-file", help="answer every request with this file's text")
    parser.add_argument("--reasoning", help="and this text as message.reasoning_content")
    args = parser.parse_args(argv)
    reply = None
    if args.reply_file:
        with open(args.reply_file, encoding="utf-8") as fh:
            reply = fh.read()
    behaviour = Behaviour(latency_ms=args.latency_ms, reply=reply, reasoning=args.reasoning)

    async def serve() -> None:
        _, port = await start(FakeOpenAI(behaviour), port=args.port)
        print(f"URL=http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
