#!/usr/bin/env python3
"""Makes a long bnscope log from a short real one: the template's `run` record once, then its epoch, bn and event
records repeated with the epochs renumbered, up to EPOCHS epochs (scripts/log-scale.sh). With --rate, writes that
many epochs a second (a stand-in for a fast writer, for `watch`), printing `WROTE <epoch> <time>` every 0.1 s."""
import argparse
import re
import sys
import time

EPOCH = re.compile(rb'"epoch":\d+')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("out")
    ap.add_argument("epochs", type=int)
    ap.add_argument("--rate", type=float, default=0.0, help="epochs a second (0: as fast as possible)")
    a = ap.parse_args()
    lines = open(a.template, "rb").read().splitlines(keepends=True)
    run = lines[0]
    groups: list = []  # per template epoch: its lines (epoch first, then bn and events)
    for line in lines[1:]:
        if line.startswith(b'{"type":"end"') or b'"type":"end"' in line[:40]:
            continue
        if b'"type":"epoch"' in line or (line.startswith(b"{") and b'"predictions_batch"' in line[:200]):
            groups.append([line])
        elif groups:
            groups[-1].append(line)
    # The template's epoch records start with fields in alphabetical order: find them by a parse instead.
    import json

    groups = []
    for line in lines[1:]:
        kind = json.loads(line).get("type")
        if kind == "epoch":
            groups.append([line])
        elif kind in ("bn", "event") and groups:
            groups[-1].append(line)
    out = open(a.out, "wb")
    out.write(run)
    start = time.monotonic()
    said = start
    for e in range(1, a.epochs + 1):
        g = groups[(e - 1) % len(groups)]
        tag = b'"epoch":%d' % e
        out.write(b"".join(EPOCH.sub(tag, line, count=1) for line in g))
        if a.rate > 0:
            due = start + e / a.rate
            now = time.monotonic()
            if due > now:
                out.flush()
                time.sleep(due - now)
            if now - said >= 0.1:
                out.flush()
                print(f"WROTE {e} {time.time():.3f}", flush=True)
                said = now
    out.write(b'{"type":"end","epochs":%d,"reason":"done"}\n' % a.epochs)
    out.close()
    if a.rate > 0:
        print(f"WROTE {a.epochs} {time.time():.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
