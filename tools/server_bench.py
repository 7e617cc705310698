#!/usr/bin/env python3
"""Aggregate generation speed of a running `meshlm serve`: C concurrent streaming
clients, each asking for N greedy tokens (ignore_eos), for each C in --clients.
Prints per C: aggregate generated tok/s, mean and max time to first token, wall time.

    tools/server_bench.py --url http://127.0.0.1:8080 --clients 1,4,8 --tokens 64
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse


def one_client(url, body, key, out, i):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"client {i}: HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft, tokens = None, 0
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise SystemExit(f"client {i}: {chunk['error']['message']}")
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif ttft is None and chunk["choices"] and chunk["choices"][0].get("text"):
            ttft = time.perf_counter() - start
    out[i] = (ttft or 0.0, tokens, time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--api-key", default="")
    a = ap.parse_args()
    print(f"{'clients':>7} {'agg tok/s':>10} {'per-client tok/s':>17} {'TTFT mean s':>12} "
          f"{'TTFT max s':>11} {'wall s':>7}")
    for c in [int(x) for x in a.clients.split(",")]:
        out = [None] * c
        threads = []
        for i in range(c):
            # Distinct token-id prompts, so no client's work repeats another's.
            prompt = [(17 * i + 5 * k + 3) % 200 + 10 for k in range(a.prompt_tokens)]
            body = {"prompt": prompt, "max_tokens": a.tokens, "temperature": 0,
                    "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}
            threads.append(threading.Thread(target=one_client, args=(a.url, body, a.api_key, out, i)))
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        if any(o is None for o in out):
            raise SystemExit("a client failed")
        total = sum(o[1] for o in out)
        ttfts = [o[0] for o in out]
        print(f"{c:>7} {total / wall:>10.1f} {total / wall / c:>17.1f} "
              f"{sum(ttfts) / c:>12.3f} {max(ttfts):>11.3f} {wall:>7.2f}")


if __name__ == "__main__":
    main()
