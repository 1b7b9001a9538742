#!/usr/bin/env bash
# Fuzzes every reader of untrusted bytes (YAML, JSON, safetensors, IDX, NPY, NPZ, PNG) with libFuzzer
# under AddressSanitizer (and UndefinedBehaviorSanitizer for the C code), FUZZ_SECONDS per target
# (default 60), starting from the committed corpus in Fuzz/corpus/<target>/. New inputs that reach new
# code are merged into that corpus (commit them); a crash leaves its input in Fuzz/crashes/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-yaml json safetensors idx npy npz png}"
scratch=.build-fuzz
swift build --scratch-path "$scratch" --product lethe-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DLETHE_LIBFUZZER \
  -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fsanitize-trap=undefined -Xswiftc -use-ld=lld
binary="$scratch/debug/lethe-fuzz"
mkdir -p Fuzz/crashes
status=0
for t in $targets; do
  found="$(mktemp -d)"
  echo "fuzz: $t for ${seconds}s"
  if ! "$binary" "$t" "$found" "Fuzz/corpus/$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 \
       -timeout=10 -artifact_prefix="Fuzz/crashes/$t-" -print_final_stats=1 2> "$found.log"; then
    tail -40 "$found.log"
    echo "fuzz: $t FAILED (input in Fuzz/crashes/)"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$found.log" | sed "s/^/fuzz: $t /"
  fi
  # Keep only the inputs that add coverage, in the committed corpus.
  before=$(ls "Fuzz/corpus/$t" | wc -l)
  "$binary" "$t" -merge=1 "Fuzz/corpus/$t" "$found" > "$found.merge.log" 2>&1 || { tail -5 "$found.merge.log"; status=1; }
  echo "fuzz: $t corpus $before -> $(ls "Fuzz/corpus/$t" | wc -l) inputs"
  rm -f "$found.merge.log"
  rm -rf "$found" "$found.log"
done
exit $status
