"""Summarizes bench/results.txt: median speed ratio over instances both
solvers finished, whether polymer counts agree, and the largest instance
(by monomers) each solver finished within the limit.

usage: python3 bench/summarize.py bench/results.txt
"""
import statistics
import sys

rows = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 9 or f[0] == "instance":
        continue
    rows.append(dict(zip("name monomers sites rs rp ps pp ratio same".split(), f)))
def seconds(v):
    try:
        return max(float(v), 1e-6)
    except ValueError:  # timeout, error
        return None


both = [r for r in rows if seconds(r["rs"]) and seconds(r["ps"])]
ratios = sorted(seconds(r["ps"]) / seconds(r["rs"]) for r in both)
print("instances: %d, both finished: %d" % (len(rows), len(ratios)))
print("median ratio (python/rust): %.1f" % statistics.median(ratios))
print("slower than the original on: %s" % (
    ["%s (%.2fx)" % (r["name"], seconds(r["ps"]) / seconds(r["rs"])) for r in both
     if seconds(r["rs"]) > seconds(r["ps"])] or "none"))
print("rust timed out where the original finished: %s" % (
    [r["name"] for r in rows if r["rs"] == "timeout" and seconds(r["ps"])] or "none"))
print("polymer counts differ on: %s" % ([r["name"] for r in rows if r["same"] == "no"] or "none"))
for who, key in (("rust", "rs"), ("python", "ps")):
    done = [r for r in rows if r[key] not in ("timeout", "error") and r["monomers"].isdigit()]
    best = max(done, key=lambda r: (int(r["monomers"]), int(r["sites"])))
    print("largest finished by %s: %s (%s monomers, %s sites, %s s)" % (who, best["name"], best["monomers"], best["sites"], best[key]))
