#!/usr/bin/env python3
"""What two server features cost or save, against a running server (meshlm serve or
llama-server), on /v1/completions so that any model file works:

  prefix   a 10-turn chat, each turn resending the whole history, as token ids (so that
           any model file works, tokenizer or not): time to first token of every turn
           (the last turn's is the figure). With --cache-field cache_prompt the request
           carries llama-server's cache_prompt (--cache-value false to turn it off).
  grammar  N greedy tokens (ignore_eos) without and with a json_schema response_format,
           alternating: generated tok/s of each and the slowdown the token mask adds.

    tools/features_bench.py --url http://127.0.0.1:8080 prefix --turns 10
    tools/features_bench.py --url http://127.0.0.1:8080 grammar --tokens 64 --rounds 3
"""
import argparse
import http.client
import json
import time
import urllib.parse

def post(url, body, key=None, tokens_out=None):
    """POSTs a completion; returns its seconds (and appends its tokens to tokens_out)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=900)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {data[:300]!r}")
    conn.close()
    seconds = time.perf_counter() - start
    if tokens_out is not None:
        tokens_out.append(json.loads(data)["usage"]["completion_tokens"])
    return seconds


def prefix(args):
    history = []
    seed = 12345
    for turn in range(args.turns):
        for _ in range(args.words):
            seed = (seed * 1103515245 + 12345) % (1 << 31)
            history.append(1000 + seed % 20000)
        # One token: the request's time is the prompt's time plus one step, the time to
        # first token whatever text (or none) the token has.
        body = {"prompt": list(history), "max_tokens": 1, "temperature": 0}
        if args.cache_field:
            body[args.cache_field] = args.cache_value == "true"
        ttft = post(args.url, body, args.key)
        print(f"turn {turn + 1}: prompt {len(history)} tokens, "
              f"time to first token {ttft * 1e3:.0f} ms")
        # The reply goes back into the history as the client saw it (fixed ids keep the
        # servers' runs alike).
        history += [500 + i for i in range(args.reply)]
    print(f"last turn time to first token: {ttft * 1e3:.0f} ms")


# A schema whose answer runs long (one free string), so decode speed can be measured.
FORMAT = {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"title": {"enum": ["a", "b"]}, "story": {"type": "string"}},
    "required": ["title", "story"], "additionalProperties": False}}}


def grammar(args):
    plain, constrained = [], []
    base = {"prompt": "Write a JSON object describing a ship.", "temperature": 0,
            "ignore_eos": True}
    for _ in range(args.rounds):
        for out, extra in ((plain, {}), (constrained, {"response_format": FORMAT})):
            # Decode speed: N tokens less one, so that the prompt does not count.
            one = post(args.url, dict(base, max_tokens=1, **extra), args.key)
            got = []
            many = post(args.url, dict(base, max_tokens=args.tokens, **extra), args.key, got)
            if got[0] < args.tokens:
                print(f"note: {extra or 'plain'} stopped after {got[0]} tokens")
            out.append((got[0] - 1) / max(many - one, 1e-9))
    p, c = sorted(plain)[len(plain) // 2], sorted(constrained)[len(constrained) // 2]
    print(f"plain {p:.2f} tok/s, json_schema {c:.2f} tok/s (median of {args.rounds}); "
          f"the mask and the driver-side sampling cost {100 * (p - c) / p:.1f} %")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", default=None)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("prefix")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--words", type=int, default=100, help="tokens each user turn adds")
    p.add_argument("--reply", type=int, default=16, help="tokens of each reply in the history")
    p.add_argument("--cache-field", default=None, help="e.g. cache_prompt (llama-server)")
    p.add_argument("--cache-value", default="true", choices=["true", "false"])
    g = sub.add_parser("grammar")
    g.add_argument("--tokens", type=int, default=64)
    g.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    prefix(args) if args.what == "prefix" else grammar(args)


if __name__ == "__main__":
    main()
