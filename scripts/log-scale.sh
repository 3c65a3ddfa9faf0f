#!/usr/bin/env bash
# Benchmarks of reading long logs (docs/PERFORMANCE.md, "Long logs"): generates logs of 10k, 100k and 1M epochs
# from a real 50-epoch bnscope run (gaps only, and with --log-bn full: per-channel arrays; both carry prediction
# matrices), then reports for each: `replay --headless` wall time and peak RSS, the replay TUI's time to its first
# screen (in tmux) and its peak RSS once the whole file is read, and the lag of `watch --headless` behind a writer of
# a chosen rate. Numbers, not pass/fail.
#
#   scripts/log-scale.sh [--bin target/release/bnscope] [--sizes "10000 100000 1000000"] [--rate 10000] [--secs 20]
#                        [--full-max 100000]   (the largest log with per-channel arrays)
#
# Needs python3, /usr/bin/time and tmux; the logs go to ${BNSCOPE_SCALE_DIR:-/tmp/bnscope-scale} (1M epochs in
# full are about 3 GB: mind the disk).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/bnscope
sizes="10000 100000 1000000"
rate=10000
secs=20
full_max=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --full-max) full_max=$2; shift 2 ;;
    *) echo "log-scale.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "log-scale.sh: $bin: build it first (cargo build --release)" >&2; exit 2; }
dir=${BNSCOPE_SCALE_DIR:-/tmp/bnscope-scale}
mkdir -p "$dir"
for kind in summary full; do
  t="$dir/template-$kind.jsonl"
  [ -s "$t" ] || "$bin" --headless --epochs 50 --log "$t" --log-bn "$kind" >/dev/null
done

printf '%-8s %-8s %10s %12s %14s %14s %14s\n' epochs bn "file MB" "replay s" "replay RSS MB" "TUI first s" "TUI RSS MB"
for n in $sizes; do
  for kind in summary full; do
    if [ "$kind" = full ] && [ "$n" -gt "$full_max" ]; then
      printf '%-8s %-8s %s\n' "$n" "$kind" "skipped (over --full-max $full_max: about 5 KB an epoch)"
      continue
    fi
    log="$dir/log-$kind-$n.jsonl"
    [ -s "$log" ] || python3 scripts/gen_log.py "$dir/template-$kind.jsonl" "$log" "$n"
    mb=$(( $(stat -c %s "$log") / 1000000 ))
    read -r rs rk < <( { /usr/bin/time -f "%e %M" "$bin" replay --headless "$log" >/dev/null; } 2>&1 | tail -1)
    # The TUI: time until tmux shows the header, then RSS once the status line no longer says "reading".
    tmux kill-session -t bnscope-scale 2>/dev/null || true
    tmux new-session -d -s bnscope-scale -x 120 -y 40
    start=$(date +%s.%N)
    tmux send-keys -t bnscope-scale "exec $bin replay $log" Enter
    first=timeout
    for _ in $(seq 1 400); do
      sleep 0.025
      if tmux capture-pane -t bnscope-scale -p | grep -q "REPLAY ·"; then
        first=$(echo "$(date +%s.%N) - $start" | bc); break
      fi
    done
    # Read to the end: the header shows the last epoch as "epoch N (N of N)".
    for _ in $(seq 1 1200); do
      sleep 0.1
      tmux capture-pane -t bnscope-scale -p | grep -q "epoch $n ($n of $n)" && break
    done
    pid=$(pgrep -f "$bin replay $log" | head -1 || true)
    tr=$( [ -n "$pid" ] && grep VmHWM "/proc/$pid/status" | awk '{print int($2/1024)}' || echo "?")
    tmux kill-session -t bnscope-scale 2>/dev/null || true
    printf '%-8s %-8s %10s %12s %14s %14s %14s\n' "$n" "$kind" "$mb" "$rs" "$((rk / 1024))" "$first" "$tr"
  done
done

# watch against a writer: the lag is how far the printed epoch trails the written one, sampled every second.
log="$dir/watch.jsonl"
rm -f "$log"
out="$dir/watch.out"
"$bin" watch --headless "$log" >"$out" 2>/dev/null &
wpid=$!
python3 scripts/gen_log.py "$dir/template-summary.jsonl" "$log" $((rate * secs)) --rate "$rate" >"$dir/writer.out" &
gpid=$!
worst=0
while kill -0 "$gpid" 2>/dev/null; do
  sleep 1
  written=$(tail -1 "$dir/writer.out" | awk '{print $2}')
  shown=$(grep -o '^epoch [0-9]*' "$out" | tail -1 | awk '{print $2}')
  [ -n "$written" ] && [ -n "$shown" ] || continue
  lag=$(( written - shown ))
  [ "$lag" -gt "$worst" ] && worst=$lag
done
sleep 1
shown=$(grep -o '^epoch [0-9]*' "$out" | tail -1 | awk '{print $2}')
kill "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
echo "watch --headless against a writer at $rate epochs/s for ${secs} s: worst lag $worst epochs ($(echo "scale=3; $worst / $rate" | bc) s); 1 s after the writer stopped it showed epoch $shown of $((rate * secs))"

# The watch TUI against the same writer (in tmux, 120×40): the epoch in the header against the epoch written, every
# second, then how long `q` takes to end it while the writer is still going.
rm -f "$log"
tmux kill-session -t bnscope-scale 2>/dev/null || true
tmux new-session -d -s bnscope-scale -x 120 -y 40
tmux send-keys -t bnscope-scale "exec $bin watch $log" Enter
sleep 1
python3 scripts/gen_log.py "$dir/template-summary.jsonl" "$log" $((rate * secs)) --rate "$rate" >"$dir/writer.out" &
gpid=$!
worst=0
for _ in $(seq 1 $((secs - 2))); do
  sleep 1
  written=$(tail -1 "$dir/writer.out" | awk '{print $2}')
  shown=$(tmux capture-pane -t bnscope-scale -p | grep -o 'epoch [0-9]* ([0-9]* of' | head -1 | awk '{print $2}')
  [ -n "$written" ] && [ -n "$shown" ] || continue
  lag=$(( written - shown ))
  [ "$lag" -gt "$worst" ] && worst=$lag
done
start=$(date +%s.%N)
tmux send-keys -t bnscope-scale q
for _ in $(seq 1 500); do
  tmux has-session -t bnscope-scale 2>/dev/null || break
  sleep 0.01
done
quit=$(echo "$(date +%s.%N) - $start" | bc)
kill "$gpid" 2>/dev/null || true
wait "$gpid" 2>/dev/null || true
tmux kill-session -t bnscope-scale 2>/dev/null || true
echo "watch TUI against a writer at $rate epochs/s: worst lag $worst epochs ($(echo "scale=3; $worst / $rate" | bc) s, sampled each second; the writer reports every 0.1 s); q ended it in $quit s"
