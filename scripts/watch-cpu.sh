#!/usr/bin/env bash
# CPU use of `bnscope watch` (the TUI, in a tmux pane) while idle and while following a headless run that writes
# a log. Measures utime+stime from /proc/PID/stat over SECONDS (default 20) each.
# Usage: scripts/watch-cpu.sh [SECONDS]    (needs tmux; builds the release binary)
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/bnscope
dir=$(mktemp -d)
log=$dir/run.jsonl
hz=$(getconf CLK_TCK)
session=bnscope-watch-cpu-$$
cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # pid seconds -> percent of one core
  local a b; a=$(ticks "$1"); sleep "$2"; b=$(ticks "$1")
  awk -v d=$((b - a)) -v hz="$hz" -v s="$2" 'BEGIN { printf "%.2f", 100 * d / hz / s }'
}
tmux new-session -d -s "$session" -x 120 -y 40 "$bin watch $log"
sleep 1
pid=$(pgrep -n -f "bnscope watch $log")
echo "idle, waiting for the file:  $(measure "$pid" "$secs") % of one core over $secs s"
# A headless run at 10 epochs a second for the following window (and a little more).
epochs=$((secs * 10 + 30))
"$bin" --headless --epochs "$epochs" --pace 10 --log "$log" >/dev/null 2>&1 &
run=$!
sleep 2
echo "following ~10 epochs/s:      $(measure "$pid" "$secs") % of one core over $secs s"
kill "$run" 2>/dev/null || true
wait "$run" 2>/dev/null || true
sleep 1
echo "idle, after the run:         $(measure "$pid" "$secs") % of one core over $secs s"
tmux capture-pane -p -t "$session" | head -3
