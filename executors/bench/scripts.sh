#!/usr/bin/env bash
# redis-benchmark on Sluice's own submit and claim scripts, beside the design-shaped ceiling of
# ../shared/bench (same flags: -c 50, -P 1 and 16). Starts a private redis-server with AOF
# everysec on 127.0.0.1:$PORT and stops it at the end.
#   executors/bench/scripts.sh          (after cargo build --release)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PORT=${PORT:-6392}
sluice=$root/target/release/sluice
dir=$(mktemp -d -t sluice-bench-scripts.XXXXXX)
redis-server --bind 127.0.0.1 --port "$PORT" --dir "$dir" --save '' --appendonly yes \
  --appendfsync everysec --logfile "$dir/redis.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
cli=(redis-cli -h 127.0.0.1 -p "$PORT")
for _ in $(seq 1 100); do "${cli[@]}" ping >/dev/null 2>&1 && break; sleep 0.05; done
export SLUICE_REDIS_URL=redis://127.0.0.1:$PORT
declare -A sha
while read -r name hash; do sha[$name]=$hash; done < <("$sluice" scripts)
params=$(printf '\x81\xa1n\x01')  # MessagePack {"n": 1}
rb() { timeout 120 redis-benchmark -h 127.0.0.1 -p "$PORT" --csv "$@" | grep -av '^"test"' | tail -1; }
echo "test,clients,pipeline,requests,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms"
for cfg in "50 1 200000" "50 16 1000000"; do
  read -r c p n <<<"$cfg"
  "${cli[@]}" flushall >/dev/null
  echo "submit,$c,$p,$n,$(rb -c "$c" -P "$p" -n "$n" evalsha "${sha[submit]}" 3 job_seq delayed events \
    '' bench "$params" 3 1000 0 3600000 0 '' | cut -d, -f2-)"
  echo "claim (1 per call),$c,$p,$n,$(rb -c "$c" -P "$p" -n "$n" evalsha "${sha[claim]}" 4 queue:bench leases \
    events wake:bench '' w1 tok 30000 1 | cut -d, -f2-)"
  left=$("${cli[@]}" llen queue:bench); [ "$left" = 0 ] || echo "warn: $left ids left in queue:bench" >&2
done
