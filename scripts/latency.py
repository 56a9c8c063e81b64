"""Measure /api/ask latency (p50/p95) over HTTP against a real server answering from the seed corpus.

    python scripts/latency.py                 # index sources/ into a temp folder, start `qa serve`
    python scripts/latency.py --url http://127.0.0.1:5000   # measure a server already running
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request
from contextlib import nullcontext

from liveserver import serving

# Questions about the seed article, answered and not, cycled through in order.
QUESTIONS = (
    "When did the Fujian Media Group create an ICC?",
    "How many ICCs had been established by December 2024?",
    "Which ICC focuses its propaganda on Russia and South Korea?",
    "What brand does the Shanghai ICC use on social media?",
    "When did Hebei create its Great Wall International Communication Center?",
    "The GWICC subsequently partnered with Agência Brasil and also set up a liaison station in Milan.",
    "Why have ICCs struggled with hiring talent?",
    "Who formed an ICC in June 2023?",
    "What does the Fujian ICC post against?",
    "How do I bake sourdough bread?",
)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of the measured values."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def measure(base: str, requests: int, warmup: int) -> dict[str, float]:
    """Time `requests` sequential GET /api/ask calls after `warmup` untimed ones."""
    wall, server = [], []
    for i in range(warmup + requests):
        url = f"{base}/api/ask?{urllib.parse.urlencode({'q': QUESTIONS[i % len(QUESTIONS)]})}"
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = json.load(resp)
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            wall.append(elapsed)
            server.append(body["timings_ms"]["total"])
    return {"requests": requests, "p50_ms": percentile(wall, 50), "p95_ms": percentile(wall, 95),
            "mean_ms": statistics.fmean(wall), "max_ms": max(wall),
            "server_p50_ms": percentile(server, 50), "server_p95_ms": percentile(server, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="base URL of a running server (default: start one on the seed)")
    parser.add_argument("-n", "--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    with nullcontext(args.url.rstrip("/")) if args.url else serving() as base:
        stats = measure(base, args.requests, args.warmup)
    print(f"/api/ask over HTTP, {stats['requests']} sequential requests ({len(QUESTIONS)} seed questions): "
          f"p50 {stats['p50_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms, mean {stats['mean_ms']:.1f} ms, "
          f"max {stats['max_ms']:.1f} ms; server-side total p50 {stats['server_p50_ms']:.1f} ms, "
          f"p95 {stats['server_p95_ms']:.1f} ms")


if __name__ == "__main__":
    main()
