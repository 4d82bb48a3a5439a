"""The load client of the serving benchmark, in its own process: an open-loop asyncio/httpx client.

``python -m benchmarks.serving_load URL REQUESTS_JSON SECONDS`` posts the request bodies of REQUESTS_JSON (a
list, cycled) to URL, one every ``1/RATE`` seconds whatever the answers do (so a slow server shows up as latency,
not as a lower rate), at most ``MAX_IN_FLIGHT`` in flight, each with a ``TIMEOUT_S`` timeout, and prints one
JSON line: requests, ok, errors by kind, the achieved rate and latency percentiles in ms. It imports httpx and
nothing heavy, and freezes what is loaded before it starts, so its own garbage collections stay short.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time

RATE = 100.0
MAX_IN_FLIGHT = 64
TIMEOUT_S = 5.0


async def load(url: str, requests: list[dict], seconds: float, rate: float = RATE) -> dict:
    """Post ``requests`` (cycled) to ``url`` at ``rate`` per second for ``seconds``; the figures."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)

    async def one(client: httpx.AsyncClient, body: dict) -> None:
        async with in_flight:
            started = time.perf_counter()
            try:
                response = await client.post(url, json=body)
                kind = None if response.status_code == 200 else f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                kind = type(err).__name__
            if kind:
                errors[kind] = errors.get(kind, 0) + 1
            else:
                latencies.append((time.perf_counter() - started) * 1000)

    total = int(seconds * rate)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as client:
        tasks = []
        begin = time.perf_counter()
        for index in range(total):
            # Open loop: request i leaves at i/rate seconds, whether or not earlier ones came back.
            delay = begin + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, requests[index % len(requests)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    latencies.sort()

    def percentile(share: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 2) if latencies else None
        )

    return {
        "requests": total,
        "ok": len(latencies),
        "errors": errors,
        "achieved_rate_per_s": round(total / elapsed, 1),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


if __name__ == "__main__":
    # URL REQUESTS_JSON SECONDS [RATE]: one run in its own process (RATE default 100 requests/s).
    target, bodies, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else RATE
    with open(bodies) as file:
        loaded = json.load(file)
    import httpx  # noqa: F401 - imported before the freeze, with everything else long-lived

    gc.freeze()
    print(json.dumps(asyncio.run(load(target, loaded, duration, rate))))
