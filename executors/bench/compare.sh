#!/usr/bin/env bash
# Runs every benchmark instance through the Rust solver (`sluice bench-solver`) and the
# original Python StableConfigs (run_original.py, python-sat), each with a time limit
# (LIMIT, default 60 s), and prints one table row per instance.
#
# The original miscounts polymers whose lowest monomer pairs with itself (SEEDS.md 1.4), so
# by default it runs patched: a copy of the checkout where a pair inside one monomer makes
# no Bind(m, m) (one line, applied here with sed; nothing of the original is kept in this
# repository), against Sluice's exact count. COUNTING=original compares the unpatched
# original with Sluice's `"counting": "original"`.
#
# usage: executors/bench/compare.sh ORIGINAL_REPO_DIR > executors/bench/results.txt
# needs: pip install python-sat; the original repo checked out at ORIGINAL_REPO_DIR
set -u
SRC=${1:?usage: compare.sh ORIGINAL_REPO_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIMIT=${LIMIT:-60}
COUNTING=${COUNTING:-exact}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ORIG="$WORK/original"
cp -r "$SRC" "$ORIG"
if [ "$COUNTING" = exact ]; then
  enc="$ORIG/stableconfigs/encoder/Encoder.py"
  sed -i 's/^\(\t*\)bind_id = sat.get_bind_id(pair.site1.ParentMonomer, pair.site2.ParentMonomer)/\1if pair.site1.ParentMonomer == pair.site2.ParentMonomer:\n\1\tcontinue\n&/' "$enc"
  grep -q "if pair.site1.ParentMonomer == pair.site2.ParentMonomer" "$enc" || { echo "patch failed"; exit 1; }
fi
(cd "$ROOT" && cargo build --release --bin sluice >/dev/null 2>&1) || { echo "build failed"; exit 1; }
BENCH=("$ROOT/target/release/sluice" bench-solver)

# name|tbn file|constraints file (or -)|gen
cases=()
for f in basic classic and_gate strand_displacement two_and or_gate explicit_or example tiny one_site \
         mistake_good stably_free_example stably_together_example exponential_tree wraparound_sorting_network; do
  cases+=("$f|$ORIG/input/$f.txt|-|1")
done
for f in and_gate classic two_and or_gate explicit_or stably_free stably_together; do
  tbn="$ORIG/input/$f.txt"; [ -f "$tbn" ] || tbn="$ORIG/input/${f}_example.txt"
  cases+=("$f+constraints|$tbn|$ORIG/input/${f}_constraints.txt|2")
done
for spec in "tree 4" "tree 5" "tree 6" "tree 8" "tree 9" "copies 5" "copies 20" "copies 80" "copies 400" \
            "random 20" "random 30" "random 40" "random 60" "random 80" \
            "random3 20" "random3 30" "random3 40" "random3 50" \
            "selfbind 20" "selfbind 30" "selfbind 40" "selfbind 50"; do
  set -- $spec
  "${BENCH[@]}" gen "$1" "$2" > "$WORK/$1_$2.txt"
  cases+=("$1-$2|$WORK/$1_$2.txt|-|1")
done

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
printf "%-28s %8s %6s %10s %10s %10s %10s %7s %6s\n" instance monomers sites rust_s rust_poly py_s py_poly ratio same
for c in "${cases[@]}"; do
  IFS='|' read -r name tbn constr gen <<<"$c"
  r=$(timeout "$LIMIT" "${BENCH[@]}" solve "$tbn" "$constr" "$gen" 1 "$COUNTING" 2>&1); rc=$?
  if [ $rc -eq 124 ]; then r="seconds=timeout polymers=-";
  elif [ $rc -ne 0 ]; then r="seconds=error polymers=TBNException"; fi
  p=$(timeout "$LIMIT" python3 "$HERE/run_original.py" "$ORIG" "$tbn" "$constr" "$gen" 1 2>&1); pc=$?
  if [ $pc -eq 124 ]; then p="seconds=timeout polymers=-";
  elif echo "$p" | grep -q "CustomExceptions"; then p="seconds=error polymers=TBNException";
  else p=$(echo "$p" | tail -1); fi
  rs=$(field "$r" seconds); rp=$(field "$r" polymers)/$(field "$r" entropy)
  ps=$(field "$p" seconds); pp=$(field "$p" polymers)/$(field "$p" entropy)
  same=no; [ "$rp" = "$pp" ] && same=yes
  { [ "$rs" = timeout ] || [ "$ps" = timeout ]; } && same=n/a
  ratio=-
  if [ "$rs" != timeout ] && [ "$ps" != timeout ] && [ "$rs" != error ]; then
    ratio=$(python3 -c "print('%.1f' % (max($ps,1e-6)/max($rs,1e-6)))")
  fi
  printf "%-28s %8s %6s %10s %10s %10s %10s %7s %6s\n" "$name" "$(field "$r" monomers)" "$(field "$r" sites)" \
    "$rs" "$rp" "$ps" "$pp" "$ratio" "$same"
done
