#!/usr/bin/env bash
# check_cli.sh CLI MPIRUN WORKDIR [EXAMPLE02]: `mpirun -np 2 tokenformer-cli train` trains one model
# with two ranks: rank 0 alone prints and writes (one summary line, the group named), and its final
# training and validation losses equal those of the one-process run with the same global batch up to
# float rounding (relative 1e-4; a wrong data split moves them by far more). With EXAMPLE02 (the
# 02_train_char_lm program), the same for example 02 under mpirun.
set -euo pipefail
cli=$1 mpirun=$2 work=$3 example02=${4:-}
rm -rf "$work"
mkdir -p "$work"
for i in $(seq 1 400); do
  echo "The quick brown fox $((i % 17)) jumps over the lazy dog. A stitch in time saves nine."
done >"$work/corpus.txt"
common=(train --preset tiny --corpus "$work/corpus.txt" --steps 6 --batch 4 --seq 32 --eval-every 3 --seed 7)
"$cli" "${common[@]}" --checkpoint-dir "$work/one" 2>"$work/one.log"
"$mpirun" --oversubscribe -np 2 "$cli" "${common[@]}" --checkpoint-dir "$work/two" 2>"$work/two.log"
fail() { echo "check_cli: $*" >&2; cat "$work/two.log" >&2; exit 1; }
grep -q "MPI, 2 ranks" "$work/two.log" || fail "the run does not say it trains on 2 MPI ranks"
[ "$(grep -c '^final validation loss' "$work/two.log")" = 1 ] || fail "expected one summary line (rank 0's)"
[ -f "$work/two/checkpoint.safetensors" ] && [ -f "$work/two/curve.csv" ] || fail "rank 0 wrote no checkpoint or curve"
value() { sed -n "s/.*\"$2\": \([-0-9.e]*\).*/\1/p" "$1/summary.json"; }
same_losses() {  # same_losses DIR_ONE DIR_TWO
  for key in final_train_loss final_validation_loss; do
    a=$(value "$1" $key) b=$(value "$2" $key)
    awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }' ||
      fail "$2: $key: one process $a, two ranks $b"
    echo "$2: $key: one process $a, two ranks $b"
  done
}
same_losses "$work/one" "$work/two"

if [ -n "$example02" ]; then
  small=(--corpus "$work/corpus.txt" --steps 6 --batch 4 --seq 32 --eval-every 3 --warmup 2 --layers 2 --hidden 64
         --heads 4 --qkv-tokens 64 --proj-tokens 64 --ffn-tokens 128 --sample-bytes 20)
  "$example02" "${small[@]}" --out-dir "$work/ex_one" >"$work/ex_one.log" 2>&1
  "$mpirun" --oversubscribe -np 2 "$example02" "${small[@]}" --out-dir "$work/ex_two" >"$work/two.log" 2>&1
  [ "$(grep -c '^final validation loss' "$work/two.log")" = 1 ] || fail "example 02: expected one summary line"
  same_losses "$work/ex_one" "$work/ex_two"
fi
