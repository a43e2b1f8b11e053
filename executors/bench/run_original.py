"""Runs the original StableConfigs solver on one instance and prints the
polymer count and wall time in the same shape as examples/bench.rs.

usage: python3 run_original.py ORIG_REPO TBN_FILE [CONSTRAINTS_FILE] [GEN] [INIT_K]
"""
import contextlib
import io
import sys
import time

sys.path.insert(0, sys.argv[1])
from stableconfigs import StableConfig  # noqa: E402

tbn = open(sys.argv[2]).readlines()
constr = open(sys.argv[3]).readlines() if len(sys.argv) > 3 and sys.argv[3] not in ("", "-") else []
gen = int(sys.argv[4]) if len(sys.argv) > 4 else 1
init_k = int(sys.argv[5]) if len(sys.argv) > 5 else 1
# One solve, timed; fast ones are repeated (up to REPEAT_FOR seconds in all, at most
# REPEAT_MAX times) and the median time is reported, as `sluice bench-solver` does.
REPEAT_FOR, REPEAT_MAX = 0.5, 200
times = []
while not times or (sum(times) < REPEAT_FOR and len(times) < REPEAT_MAX):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        configs, entropy = StableConfig.get_stable_config(tbn, constr, gen, init_k)
    times.append(time.perf_counter() - t0)
times.sort()
seconds = times[len(times) // 2]
counts = [len(list(c)) for c in configs]
print("seconds=%.6f polymers=%s entropy=%d count=%d" % (seconds, ",".join(map(str, counts)), entropy, len(configs)))
