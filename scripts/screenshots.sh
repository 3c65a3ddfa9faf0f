#!/usr/bin/env bash
# Makes the README's screenshots from real runs of the release binary:
#   screenshots/mystery.png     epoch 5 at the default Keras momentum 0.99: train acc 1.0, eval running not
#   screenshots/eval-batch.png  the same moment after `e`: evaluation with batch statistics, all right
#   screenshots/converged.png   after `-` down to momentum 0.9: eval with running stats reaches 1.0
#
# bnscope runs in a pseudo-terminal at 120x40 (scripts/screenshots.py drives it with pyte and paints the
# cells with Pillow). Needs python3 (with venv), fontconfig's DejaVu Sans Mono (Debian/Ubuntu:
# apt-get install fonts-dejavu-core); pyte and Pillow are installed into a virtual environment outside the
# repository when the python3 on PATH lacks them ($BNSCOPE_SHOTS_VENV, default ~/.cache/bnscope/venv-shots).
#
#   scripts/screenshots.sh                 # into screenshots/
#   scripts/screenshots.sh /tmp/shots      # elsewhere
#   scripts/screenshots.sh screenshots --only-lessons   # the lessons only (lesson-*.png, lessons.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-screenshots}"

cargo build --release --quiet
bin=target/release/bnscope

python=python3
if ! python3 -c 'import pyte, PIL' 2>/dev/null; then
    venv="${BNSCOPE_SHOTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bnscope/venv-shots}"
    if ! "$venv/bin/python" -c 'import pyte, PIL' 2>/dev/null; then
        echo "screenshots: installing pyte and Pillow into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet pyte pillow
    fi
    python="$venv/bin/python"
fi

exec "$python" scripts/screenshots.py "$bin" "$out" "${@:2}"
