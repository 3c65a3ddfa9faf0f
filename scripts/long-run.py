#!/usr/bin/env python3
"""Long-run memory benchmark: runs bnscope for many epochs and samples its resident set size.

  scripts/long-run.py [--epochs 100000] [--tui] [--interval 5] [--bin target/release/bnscope] [-- extra flags]

Headless by default; --tui runs the TUI in a pseudo-terminal at 120x40 with --fps 2 (output read and discarded),
quitting with `q` once the log shows the last epoch. Prints RSS samples and, after the warm-up (the first 10 % of
the run), the min / median / max RSS and the largest deviation from the median in percent.
"""
import argparse
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import fcntl
import termios


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def last_epoch(log):
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("type") == "epoch":
            return r["epoch"]
        if r.get("type") == "end":
            return -r["epochs"]
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=100000)
    ap.add_argument("--tui", action="store_true")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--bin", default="target/release/bnscope")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bnscope-long-")
    log = os.path.join(tmp, "run.jsonl")
    args = [a.bin, "--epochs", str(a.epochs), "--log", log, *a.extra]
    master = None
    if a.tui:
        pid, master = pty.fork()
        if pid == 0:
            os.execvp(a.bin, args + ["--fps", "2"])
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(pid, signal.SIGWINCH)
    else:
        proc = subprocess.Popen(args + ["--headless"], stdout=subprocess.DEVNULL)
        pid = proc.pid
    start = time.time()
    samples = []
    next_sample = start
    written = 0
    while True:
        now = time.time()
        if master is not None:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    written += len(os.read(master, 65536))
                except OSError:
                    break
        else:
            time.sleep(0.2)
        if now >= next_sample:
            kib = rss_kib(pid)
            ep = last_epoch(log)
            if kib is None:
                break
            samples.append((now - start, abs(ep), kib))
            print(f"{now - start:8.0f}s epoch {abs(ep):>7} RSS {kib / 1024:8.1f} MiB", flush=True)
            next_sample += a.interval
            done = ep < 0
            ep = abs(ep)
            if a.tui and (ep >= a.epochs or done):
                os.write(master, b"q")
        if master is None and proc.poll() is not None:
            break
        if master is not None:
            try:
                wpid, _ = os.waitpid(pid, os.WNOHANG)
                if wpid == pid:
                    break
            except ChildProcessError:
                break
    dur = time.time() - start
    warm = [s for s in samples if s[0] >= 0.1 * dur]
    if len(warm) >= 2:
        vals = [s[2] for s in warm]
        med = statistics.median(vals)
        dev = max(abs(v - med) for v in vals) / med * 100
        print(f"mode {'tui --fps 2' if a.tui else 'headless'}: {samples[-1][1] if samples else 0} epochs in {dur:.0f} s; "
              f"after warm-up RSS min {min(vals) / 1024:.1f} / median {med / 1024:.1f} / max {max(vals) / 1024:.1f} MiB, "
              f"largest deviation from the median {dev:.2f} %" + (f"; {written / dur / 1024:.1f} KiB/s to the terminal" if a.tui else ""))
    print(f"log: {log}")


if __name__ == "__main__":
    main()
