#!/usr/bin/env python3
"""Screenshots of the real bnscope TUI, for the README (run through scripts/screenshots.sh).

Drives the release binary in a pseudo-terminal (stdlib pty) at 120x40 with TERM=xterm-256color, feeds its
output to pyte (a terminal emulator), and paints the emulated screen with Pillow: one monospace cell per
character, the cell's colours, bold as the bold face. Box-drawing lines and block elements are drawn as
rectangles (as terminals such as kitty, alacritty and wezterm do) so that they join exactly; everything else
comes from DejaVu Sans Mono, with fallback fonts for glyphs it lacks.

The story (one run of the default command, as a newcomer starts it; the opening pauses at epoch 5 by itself):
  mystery.png     the opening: epoch 5, train acc 1.0, eval with running stats 0.333, the explanation and the
                  running-stats predictions
  eval-batch.png  then `e`: the same moment with batch-stats predictions (all right)
  converged.png   then `e` back, `-` three times (Keras momentum 0.99 -> 0.9), space: runs until eval with
                  running stats reaches 1.0 and the diagnosis says "Converged"

Then one screenshot per lesson (`bnscope --scenario NAME`, paused by itself at the lesson's epoch with its
explanation on screen): lesson-seed.png, lesson-small-batch.png, lesson-frozen-backbone.png,
lesson-shifted-eval.png, lesson-ema.png (and lesson-ema-after-c.png: the same moment after `c`),
lesson-groupnorm.png; and lessons.png, the `L` list.

Usage: screenshots.py BINARY OUTDIR [--font-size PX] [--only-lessons]
"""
import argparse
import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

import pyte
from PIL import Image, ImageDraw, ImageFont

COLS, ROWS = 120, 40
BSU, ESU = b"\x1b[?2026h", b"\x1b[?2026l"  # synchronized update: one frame between them

# A dark palette (Tomorrow Night-like). Index = ANSI colour number 0..15.
PALETTE = [
    "1d1f21", "cc6666", "98be65", "e5c07b", "6f9fd8", "c678dd", "56b6c2", "c5c8c6",
    "6b7075", "ff6c6b", "b5e07a", "f0d58a", "8fb8f0", "d79ff0", "7fd6e0", "eaeaea",
]
DEFAULT_FG = "d0d2d0"
DEFAULT_BG = "1d1f21"
NAMES = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]
# pyte reports 38;5;N colours as hex from the xterm table; map its first 16 back to our palette.
XTERM16 = {h: i for i, h in enumerate(pyte.graphics.FG_BG_256[:16])}


def colour(c, default):
    if c == "default":
        return default
    if c in NAMES:
        return PALETTE[NAMES.index(c)]
    if c == "yellow":
        return PALETTE[3]
    if c.startswith("bright"):
        base = c[len("bright"):]
        base = "brown" if base == "yellow" else base
        if base in NAMES:
            return PALETTE[8 + NAMES.index(base)]
    if c in XTERM16:
        return PALETTE[XTERM16[c]]
    if re.fullmatch(r"[0-9a-fA-F]{6}", c):
        return c
    return default


def rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def find_font(names):
    """First existing file among `names` (paths, or family names for fc-match)."""
    for n in names:
        if os.path.isabs(n):
            if os.path.exists(n):
                return n
            continue
        try:
            f = subprocess.run(["fc-match", "-f", "%{file}", n], capture_output=True, text=True).stdout
        except FileNotFoundError:
            continue
        if f and os.path.exists(f) and (n.split(":")[0].replace(" ", "").lower() in f.replace("-", "").lower()):
            return f
    return None


D = "/usr/share/fonts/truetype/"
REGULAR = [D + "dejavu/DejaVuSansMono.ttf", "DejaVu Sans Mono"]
BOLD = [D + "dejavu/DejaVuSansMono-Bold.ttf", "DejaVu Sans Mono:bold"]
FALLBACK = [
    D + "dejavu/DejaVuSans.ttf",
    D + "noto/NotoSansMono-Regular.ttf",
    D + "noto/NotoSansSymbols2-Regular.ttf",
    D + "unifont/unifont.ttf",
    "/usr/share/fonts/opentype/unifont/unifont.otf",
]


class Fonts:
    def __init__(self, size):
        reg = find_font(REGULAR)
        if reg is None:
            sys.exit("screenshots: DejaVu Sans Mono not found (Debian/Ubuntu: apt-get install fonts-dejavu-core)")
        self.regular = ImageFont.truetype(reg, size)
        b = find_font(BOLD)
        self.bold = ImageFont.truetype(b, size) if b else self.regular
        self.fallback = [ImageFont.truetype(f, size) for f in FALLBACK if os.path.exists(f)]
        self.cache = {}
        ascent, descent = self.regular.getmetrics()
        self.ascent = ascent
        self.cell_w = round(self.regular.getlength("M"))
        self.cell_h = ascent + descent
        self.missing = set()

    @staticmethod
    def _covers(font, ch):
        # A glyph the font lacks renders as its .notdef box: compare with a surely missing code point.
        key = id(font)
        notdef = Fonts._notdef.get(key)
        if notdef is None:
            m = font.getmask("\U0010fffd")
            notdef = Fonts._notdef[key] = (m.size, bytes(m))
        m = font.getmask(ch)
        return (m.size, bytes(m)) != notdef

    _notdef = {}

    def for_char(self, ch, bold):
        k = (ch, bold)
        if k not in self.cache:
            first = self.bold if bold else self.regular
            pick = None
            for f in [first, self.regular] + self.fallback:
                if ch.isspace() or self._covers(f, ch):
                    pick = f
                    break
            if pick is None:
                self.missing.add(ch)
                pick = first
            self.cache[k] = pick
        return self.cache[k]


# Light box-drawing characters: which arms (up, down, left, right) they have.
BOX = {
    "─": "lr", "│": "ud", "┌": "dr", "┐": "dl", "└": "ur", "┘": "ul", "├": "udr", "┤": "udl",
    "┬": "dlr", "┴": "ulr", "┼": "udlr", "╭": "dr", "╮": "dl", "╰": "ur", "╯": "ul",
}


def draw_special(d, ch, x, y, w, h, fg, bg):
    """Box-drawing lines and block elements as rectangles; returns False for anything else."""
    o = ord(ch)
    if ch in BOX:
        t = max(1, round(w / 9))
        cx = x + (w - t) // 2
        cy = y + (h - t) // 2
        arms = BOX[ch]
        if "u" in arms:
            d.rectangle([cx, y, cx + t - 1, cy + t - 1], fill=fg)
        if "d" in arms:
            d.rectangle([cx, cy, cx + t - 1, y + h - 1], fill=fg)
        if "l" in arms:
            d.rectangle([x, cy, cx + t - 1, cy + t - 1], fill=fg)
        if "r" in arms:
            d.rectangle([cx, cy, x + w - 1, cy + t - 1], fill=fg)
        return True
    if 0x2581 <= o <= 0x2588:  # ▁▂▃▄▅▆▇█: lower eighths
        n = o - 0x2580
        top = y + h - round(h * n / 8)
        d.rectangle([x, top, x + w - 1, y + h - 1], fill=fg)
        return True
    if 0x2589 <= o <= 0x258F:  # ▉▊▋▌▍▎▏: left eighths
        n = 8 - (o - 0x2588)
        d.rectangle([x, y, x + max(1, round(w * n / 8)) - 1, y + h - 1], fill=fg)
        return True
    if ch == "▀":
        d.rectangle([x, y, x + w - 1, y + h // 2 - 1], fill=fg)
        return True
    if ch in "░▒▓":
        a = {"░": 0.25, "▒": 0.5, "▓": 0.75}[ch]
        mix = tuple(round(f * a + b * (1 - a)) for f, b in zip(fg, bg))
        d.rectangle([x, y, x + w - 1, y + h - 1], fill=mix)
        return True
    return False


def render(screen, path, fonts, pad=14):
    w, h = fonts.cell_w, fonts.cell_h
    img = Image.new("RGB", (COLS * w + 2 * pad, ROWS * h + 2 * pad), rgb(DEFAULT_BG))
    d = ImageDraw.Draw(img)
    for row in range(ROWS):
        line = screen.buffer[row]
        for col in range(COLS):
            c = line[col]
            fg = rgb(colour(c.fg, DEFAULT_FG))
            bg = rgb(colour(c.bg, DEFAULT_BG))
            if c.reverse:
                fg, bg = bg, fg
            x, y = pad + col * w, pad + row * h
            if bg != rgb(DEFAULT_BG):
                d.rectangle([x, y, x + w - 1, y + h - 1], fill=bg)
            ch = c.data
            if not ch or ch == " ":
                pass
            elif not draw_special(d, ch, x, y, w, h, fg, bg):
                font = fonts.for_char(ch, c.bold)
                d.text((x, y + fonts.ascent), ch, font=font, fill=fg, anchor="ls")
            if c.underscore:
                d.rectangle([x, y + h - 2, x + w - 1, y + h - 2], fill=fg)
    img.save(path, optimize=True)


class Term:
    """The binary in a pseudo-terminal, its output fed to pyte."""

    def __init__(self, argv, cwd):
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.in_frame = False
        self.pending = b""
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
        env.pop("NO_COLOR", None)
        pid, fd = pty.fork()
        if pid == 0:
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    def pump(self, timeout):
        """Reads what is there (waiting up to `timeout` s for the first bytes); False at EOF."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError as e:
            if e.errno == errno.EIO:
                return False
            raise
        if not data:
            return False
        # Feed only whole frames, so that the screen is never looked at half-drawn.
        data = self.pending + data
        cut = 0
        i = 0
        while True:
            b, e = data.find(BSU, i), data.find(ESU, i)
            if b < 0 and e < 0:
                break
            if e >= 0 and (b < 0 or e < b):
                self.in_frame, i, cut = False, e + len(ESU), e + len(ESU)
            else:
                self.in_frame, i = True, b + len(BSU)
        if not self.in_frame:
            cut = len(data)
        self.stream.feed(data[:cut])
        self.pending = data[cut:]
        return True

    def text(self):
        return "\n".join(self.screen.display)

    def wait_for(self, what, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.text()):
                return
            if not self.pump(0.05):
                break
        sys.exit(f"screenshots: timed out waiting for {what}; screen:\n{self.text()}")

    def settle(self, quiet=0.4, limit=5.0):
        """Reads until nothing arrives for `quiet` s (or `limit` s pass)."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            before = self.text()
            self.pump(0.05)
            if self.text() != before:
                last = time.monotonic()

    def press(self, keys):
        os.write(self.fd, keys.encode())

    def close(self):
        self.press("q")
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if not self.pump(0.1):
                break
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
        else:
            os.kill(self.pid, signal.SIGTERM)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def header_epoch(text):
    m = re.search(r"epoch (\d+) · step", text)
    return int(m.group(1)) if m else None


def acc_value(text, label):
    """The value at the right of an accuracy row (`eval running  ▃▃▃▃▃   0.333 ◀`)."""
    for line in text.splitlines():
        if line.startswith("│ " + label):
            m = re.search(r"(\d\.\d{3}|NaN)\s*◀?\s*│", line)
            if m:
                return m.group(1)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("outdir")
    ap.add_argument("--font-size", type=int, default=15)
    ap.add_argument("--only-lessons", action="store_true")
    a = ap.parse_args()
    fonts = Fonts(a.font_size)
    os.makedirs(a.outdir, exist_ok=True)
    out = lambda name: os.path.join(a.outdir, name)  # noqa: E731
    if not a.only_lessons:
        seed_story(a, fonts, out)
    made = lessons(a, fonts, out)
    if fonts.missing:
        print("screenshots: no font has " + " ".join(sorted(fonts.missing)), file=sys.stderr)
    names = [] if a.only_lessons else ["mystery.png", "eval-batch.png", "converged.png"]
    for n in names + made:
        print(out(n))


# The lessons and the epoch each pauses at for its screenshot (the TUI's --pause-at).
LESSONS = [
    ("seed", 5),
    ("small-batch", 8),
    ("frozen-backbone", 10),
    ("shifted-eval", 10),
    ("ema", 15),
    ("groupnorm", 5),
]


def lessons(a, fonts, out):
    made = []
    for name, at in LESSONS:
        with tempfile.TemporaryDirectory() as cwd:
            # stderr (the data summary lines printed before the TUI starts) away: pyte has no alternate screen, so
            # they would stay under the TUI's frames.
            argv = ["sh", "-c", 'exec "$0" "$@" 2>/dev/null', os.path.abspath(a.binary), "--device", "cpu",
                    "--scenario", name, "--pause-at", str(at)]
            t = Term(argv, cwd)
            try:
                t.wait_for(f"{name}: the pause at epoch {at}", lambda s: header_epoch(s) == at and "paused" in s, 180)
                t.settle()
                s = t.text()
                print(f"{name} epoch {at}: train {acc_value(s, 'train (batch)')}, "
                      f"running {acc_value(s, 'eval running') or acc_value(s, 'val running')}, "
                      f"batch {acc_value(s, 'eval batch') or acc_value(s, 'val batch')}")
                render(t.screen, out(f"lesson-{name}.png"), fonts)
                made.append(f"lesson-{name}.png")
                if name == "ema":
                    t.press("c")
                    t.wait_for("the recalibration", lambda s: "re-estimated" in s, 30)
                    t.settle()
                    render(t.screen, out("lesson-ema-after-c.png"), fonts)
                    made.append("lesson-ema-after-c.png")
                if name == "seed":
                    t.press("L")
                    t.wait_for("the lesson list", lambda s: "lessons" in s and "groupnorm" in s, 10)
                    t.settle()
                    render(t.screen, out("lessons.png"), fonts)
                    made.append("lessons.png")
            finally:
                t.close()
    return made


def seed_story(a, fonts, out):
    with tempfile.TemporaryDirectory() as cwd:
        t = Term([os.path.abspath(a.binary), "--device", "cpu"], cwd)
        try:
            t.wait_for(
                "the opening pause at epoch 5",
                lambda s: header_epoch(s) == 5 and "paused" in s and "seed's situation" in s,
                120,
            )
            t.settle()
            s = t.text()
            train, run = acc_value(s, "train (batch)"), acc_value(s, "eval running")
            print(f"epoch 5: train {train}, eval running {run}, eval batch {acc_value(s, 'eval batch')}")
            if train != "1.000" or run == "1.000":
                sys.exit(f"screenshots: epoch 5 does not show the mystery:\n{s}")
            render(t.screen, out("mystery.png"), fonts)

            t.press("e")
            t.wait_for("batch-stats evaluation", lambda s: "BATCH STATS" in s, 10)
            t.settle()
            if "3 of 3 right" not in t.text():
                sys.exit(f"screenshots: batch-stats predictions are not all right:\n{t.text()}")
            render(t.screen, out("eval-batch.png"), fonts)

            t.press("e")
            t.wait_for("running-stats evaluation", lambda s: "RUNNING STATS" in s, 10)
            for m in ("0.98", "0.95", "0.9"):
                t.press("-")
                t.wait_for(f"momentum {m}", lambda s, m=m: f"momentum {m} (Keras)" in s, 10)
            t.press(" ")
            t.wait_for(
                "convergence",
                lambda s: "Converged" in s and acc_value(s, "eval running") == "1.000",
                300,
            )
            # A few more epochs, so that the chart shows the flat top after the bend; then the next whole frame.
            start = header_epoch(t.text()) or 0
            t.wait_for("a few more epochs", lambda s: (header_epoch(s) or 0) >= start + 10, 60)
            t.wait_for("convergence", lambda s: "Converged" in s and acc_value(s, "eval running") == "1.000", 60)
            print(f"converged: epoch {header_epoch(t.text())}")
            render(t.screen, out("converged.png"), fonts)
        finally:
            t.close()


if __name__ == "__main__":
    main()
