"""The rater engine against a local OpenAI-compatible server, beside the openai SDK.

20,000 chat requests at concurrency 256, with the server answering after 100 ms
(the ideal rate is concurrency / latency = 2,560 req/s) and after 0 ms (pure
client overhead). The server runs in its own process so client and server each
get a core. Variants, all in one run on the same server:

- kbpipe engine: `BatchRunner` with the journal on (every answer appended and
  flushed as it arrives), as `kbpipe filter/prompts --rater api` runs it.
- openai SDK: `AsyncOpenAI.chat.completions.create` from 256 worker tasks, as
  the seed scripts did (answers kept in memory, no journal), with the SDK's
  default connection pool and with its keep-alive pool raised to 256.

Figures: req/s measured inside each process (excluding interpreter start-up),
and for the engine the time to settle all 20,000 rows again from the journal.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import Measurement, measure, print_table, python_cmd

N_REQUESTS = 20_000
CONCURRENCY = 256
# About the size of a small judge prompt; every request is distinct.
PROMPT = "Rate the difficulty of rewriting this PyTorch module with Triton kernels. " * 8


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{PROMPT}\nmodule #{i}"}]


def engine(url: str, n: str = str(N_REQUESTS), concurrency: str = str(CONCURRENCY)) -> None:
    from kbpipe.rater.batch import BatchRunner, EngineConfig, Job
    from kbpipe.rater.client import Endpoint, Sampling
    from kbpipe.rater.journal import Journal
    from kbpipe.rater.judge import parse

    cfg = EngineConfig(
        Endpoint(url, "sk-bench"), Sampling("bench/model", 256, 0.1), concurrency=int(concurrency)
    )
    jobs = [Job(i, _messages(i)) for i in range(int(n))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "judge.jsonl"
        with Journal(path) as journal:
            runner = BatchRunner(cfg, journal, parse, template_version="bench", progress=False)
            cpu0, start = time.process_time(), time.perf_counter()
            outcomes = runner.run(jobs)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        assert all(o.ok for o in outcomes), runner.report.failed
        assert path.read_bytes().count(b"\n") == len(jobs)
        with Journal(path) as journal:
            again = BatchRunner(cfg, journal, parse, template_version="bench", progress=False)
            t0 = time.perf_counter()
            again.run(jobs)
            rerun = time.perf_counter() - t0
        assert again.report.cached == len(jobs)
    print(f"REQ_PER_S={len(jobs) / elapsed:.1f}")
    print(f"CPU_US_PER_REQ={1e6 * cpu / len(jobs):.0f}")
    print(f"RERUN_S={rerun:.3f}")


def per_task(url: str, n: str = str(N_REQUESTS), concurrency: str = str(CONCURRENCY)) -> None:
    """The design the engine avoids: one task per request behind a semaphore.

    Same client, journal and parsing as the engine; only the scheduling differs.
    """
    import aiohttp

    from kbpipe.rater.client import ChatClient, Endpoint, Retries, Sampling, Timeouts
    from kbpipe.rater.journal import Journal, request_key
    from kbpipe.rater.judge import parse

    endpoint, sampling = Endpoint(url, "sk-bench"), Sampling("bench/model", 256, 0.1)

    async def main(journal: Journal) -> int:
        gate = asyncio.Semaphore(int(concurrency))
        connector = aiohttp.TCPConnector(limit=int(concurrency))
        async with aiohttp.ClientSession(connector=connector, headers=endpoint.headers()) as s:
            client = ChatClient(s, endpoint, sampling, Timeouts(), Retries())

            async def one(i: int) -> bool:
                messages = _messages(i)
                key = request_key(
                    model=sampling.model,
                    messages=messages,
                    sampling=sampling.params(),
                    template_version="bench",
                    ask=0,
                )
                async with gate:
                    answer = await client.complete(messages)
                journal.append(key, answer, model=sampling.model)
                journal.flush()
                return parse(answer.text) is not None

            results = await asyncio.gather(*(one(i) for i in range(int(n))))
        return sum(results)

    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.jsonl") as journal:
        cpu0, start = time.process_time(), time.perf_counter()
        ok = asyncio.run(main(journal))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    assert ok == int(n)
    print(f"REQ_PER_S={int(n) / elapsed:.1f}")
    print(f"CPU_US_PER_REQ={1e6 * cpu / int(n):.0f}")


def sdk(
    url: str, n: str = str(N_REQUESTS), concurrency: str = str(CONCURRENCY), pool: str = "default"
) -> None:
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    async def main() -> float:
        kwargs = {}
        if pool != "default":
            import httpx2

            limits = httpx2.Limits(max_connections=int(pool), max_keepalive_connections=int(pool))
            kwargs["http_client"] = DefaultAsyncHttpxClient(limits=limits)
        client = AsyncOpenAI(base_url=url, api_key="sk-bench", **kwargs)
        todo = iter(range(int(n)))
        answers: list[str | None] = []

        async def worker() -> None:
            for i in todo:
                resp = await client.chat.completions.create(
                    model="bench/model", messages=_messages(i), max_tokens=256, temperature=0.1
                )
                answers.append(resp.choices[0].message.content)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(int(concurrency))))
        elapsed = time.perf_counter() - start
        await client.close()
        assert len(answers) == int(n)
        return elapsed

    cpu0 = time.process_time()
    elapsed = asyncio.run(main())
    print(f"REQ_PER_S={int(n) / elapsed:.1f}")
    print(f"CPU_US_PER_REQ={1e6 * (time.process_time() - cpu0) / int(n):.0f}")


@contextmanager
def server(latency_ms: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kbpipe.testing.openai_server", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("URL="):
            raise RuntimeError(f"test server did not start: {line!r}")
        yield line.strip().split("=", 1)[1]
    finally:
        proc.terminate()
        proc.wait(10)


def _figures(m: Measurement) -> Measurement:
    labels = (
        ("REQ_PER_S", "req/s"),
        ("CPU_US_PER_REQ", "client CPU us/req"),
        ("RERUN_S", "journal rerun s"),
    )
    for key, label in labels:
        found = re.search(rf"^{key}=([0-9.]+)$", m.stdout, re.MULTILINE)
        if found:
            m.figures[label] = float(found.group(1))
    return m


SDK_DEFAULT = "openai SDK (default pool)"
SDK_POOL = "openai SDK (pool 256)"
PER_TASK = "task per request + semaphore"
ENGINE = "kbpipe engine (journal on)"


def _variants(url: str) -> list[tuple[str, list[str]]]:
    n, c = str(N_REQUESTS), str(CONCURRENCY)
    return [
        (SDK_DEFAULT, python_cmd("bench.bench_rater:sdk", url, n, c)),
        (SDK_POOL, python_cmd("bench.bench_rater:sdk", url, n, c, c)),
        (PER_TASK, python_cmd("bench.bench_rater:per_task", url, n, c)),
        (ENGINE, python_cmd("bench.bench_rater:engine", url, n, c)),
    ]


def run() -> None:
    for latency in (100, 0):
        with server(latency) as url:
            rows = [_figures(measure(name, argv)) for name, argv in _variants(url)]
        title = (
            f"rater: {N_REQUESTS:,} requests, concurrency {CONCURRENCY}, "
            f"server latency {latency} ms"
        )
        print_table(title, rows, baseline=SDK_POOL)
        _verdict(latency, {r.name: r.figures["req/s"] for r in rows})


def _verdict(latency: int, rates: dict[str, float]) -> None:
    engine_rate = rates[ENGINE]
    if latency:
        ideal = CONCURRENCY / (latency / 1000)
        print(
            f"  engine: {engine_rate:,.0f} req/s = {100 * engine_rate / ideal:.1f}% of the "
            f"ideal {ideal:,.0f} req/s (target >= 90%)"
        )
    else:
        best_sdk = max(rates[SDK_DEFAULT], rates[SDK_POOL])
        print(
            f"  engine: {engine_rate:,.0f} req/s (target >= 3,000), "
            f"{engine_rate / best_sdk:.1f}x the faster SDK variant (target >= 5x), "
            f"{engine_rate / rates[PER_TASK]:.2f}x task-per-request"
        )
