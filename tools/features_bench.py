#!/usr/bin/env python3
"""What two server features cost or save, against a running server (meshlm serve or
llama-server), on /v1/completions so that any model file works:

  prefix   a 10-turn chat, each turn resending the whole history, as token ids (so that
           any model file works, tokenizer or not): time to first token of every turn
           (the last turn's is the figure). With --cache-field cache_prompt the request
           carries llama-server's cache_prompt.
  grammar  N greedy tokens (ignore_eos) without and with response_format json_object,
           alternating: generated tok/s of each and the slowdown the token mask adds.

    tools/features_bench.py --url http://127.0.0.1:8080 prefix --turns 10
    tools/features_bench.py --url http://127.0.0.1:8080 grammar --tokens 64 --rounds 3
"""
import argparse
import http.client
import json
import time
import urllib.parse

WORDS = ("the river runs past old stone walls where boats wait for the tide and the "
         "market opens early with bread fish lamps rope and letters from the far coast ").split()


def stream(url, body, key=None):
    """POSTs a streaming completion; returns (seconds to first text, total seconds, tokens)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=900)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    body = dict(body, stream=True)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft, chunks = None, 0
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        data = json.loads(line[6:])
        if data.get("choices") and data["choices"][0].get("text"):
            chunks += 1
            if ttft is None:
                ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    return ttft or total, total, chunks


def prefix(args):
    history = []
    seed = 12345
    for turn in range(args.turns):
        for _ in range(args.words):
            seed = (seed * 1103515245 + 12345) % (1 << 31)
            history.append(1000 + seed % 20000)
        body = {"prompt": list(history), "max_tokens": args.reply, "temperature": 0,
                "ignore_eos": True}
        if args.cache_field:
            body[args.cache_field] = True
        ttft, total, _ = stream(args.url, body, args.key)
        print(f"turn {turn + 1}: prompt {len(history)} tokens, "
              f"time to first token {ttft * 1e3:.0f} ms")
        # The reply goes back into the history as the client saw it (fixed ids keep the
        # servers' runs alike).
        history += [500 + i for i in range(args.reply)]
    print(f"last turn time to first token: {ttft * 1e3:.0f} ms")


def grammar(args):
    plain, constrained = [], []
    base = {"prompt": "Write a JSON object describing a ship.", "max_tokens": args.tokens,
            "temperature": 0, "ignore_eos": True}
    for _ in range(args.rounds):
        for out, extra in ((plain, {}), (constrained, {"response_format": {"type": "json_object"}})):
            ttft, total, _ = stream(args.url, dict(base, **extra), args.key)
            # Decode speed after the first token, so the prompt does not count.
            out.append((args.tokens - 1) / max(total - ttft, 1e-9))
    p, c = sorted(plain)[len(plain) // 2], sorted(constrained)[len(constrained) // 2]
    print(f"plain {p:.1f} tok/s, json_object {c:.1f} tok/s (median of {args.rounds}); "
          f"the mask and the driver-side sampling cost {100 * (p - c) / p:.1f} %")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", default=None)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("prefix")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--words", type=int, default=100, help="tokens each user turn adds")
    p.add_argument("--reply", type=int, default=16, help="tokens each reply generates")
    p.add_argument("--cache-field", default=None, help="e.g. cache_prompt (llama-server)")
    g = sub.add_parser("grammar")
    g.add_argument("--tokens", type=int, default=64)
    g.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    prefix(args) if args.what == "prefix" else grammar(args)


if __name__ == "__main__":
    main()
