#!/usr/bin/env bash
# Transfer check (issue #11): the students trained on MBPP, unchanged, on HumanEval+ v0.1.10 (164 problems).
# Usage: bash experiments/mbpp/transfer.sh [ARM...]   (default: every arm below, in this order)
# Each arm generates with run.yaml's generation settings (same Q8_0 GGUFs, chat template, budget of 8
# programs a problem), is judged on HumanEval+'s hidden tests (base + plus inputs), and re-running resumes
# from its files. The report of the arms with results goes to out/humanevalplus/report.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
X=experiments/mbpp
OUT=$X/out/humanevalplus
DATA=../shared/data/humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz
CODEPLAN=${CODEPLAN:-.venv/bin/codeplan}

# name -> student (out/<student>/model-q8_0.gguf) and strategy, as the arms of the same name in run.yaml
declare -A MODEL=([baseline-direct]=baseline [codeplan-direct]=codeplan [baseline-rerank]=baseline
                  [codeplan-best-judged]=codeplan [zero-shot-direct]=base)
declare -A STRATEGY=(
  [baseline-direct]="--strategy direct --num-samples 8"
  [codeplan-direct]="--strategy direct --num-samples 8"
  [zero-shot-direct]="--strategy direct --num-samples 8"
  [baseline-rerank]="--strategy direct-rerank --num-samples 1"
  [codeplan-best-judged]="--strategy plan-sampling --num-plans 2 --codes-per-plan 4 --num-samples 1 --final best-judged")
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=(baseline-direct codeplan-direct baseline-rerank codeplan-best-judged zero-shot-direct)

mkdir -p "$OUT"
[ -f "$OUT/timings.tsv" ] || printf 'step\tarm\tstarted\twall_s\tuser_s\tsys_s\n' > "$OUT/timings.tsv"
timed() {  # timed STEP ARM COMMAND...: run it, append its wall/user/sys seconds to timings.tsv
  local step=$1 arm=$2; shift 2
  TIMEFORMAT="$step"$'\t'"$arm"$'\t'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"$'\t%3R\t%3U\t%3S'
  { time "$@" 2>&3; } 3>&2 2>> "$OUT/timings.tsv"
}
results=()
for arm in "${ARMS[@]}"; do
  [ -n "${MODEL[$arm]:-}" ] || { echo "unknown arm '$arm' (known: ${!MODEL[*]})" >&2; exit 2; }
  gguf=$X/out/${MODEL[$arm]}/model-q8_0.gguf
  [ -f "$gguf" ] || { echo "$gguf is missing: run 'codeplan run $X/run.yaml' first (it trains and exports)" >&2; exit 2; }
  if [ ! -f "$OUT/$arm/results.json" ]; then
    # shellcheck disable=SC2086  # STRATEGY holds several options
    timed generate "$arm" "$CODEPLAN" generate ${STRATEGY[$arm]} --budget 8 --seed 0 \
      --plan-temperature 0.6 --plan-top-p 0.95 --plan-max-tokens 192 \
      --code-temperature 0.8 --code-top-p 0.95 --code-max-tokens 320 \
      --data "$DATA" --model "llamacpp:$gguf" --out "$OUT/$arm/samples.jsonl" \
      --chat-template --batch-problems 8 --batch-size 32 --threads 2
    timed evaluate "$arm" "$CODEPLAN" evaluate --data "$DATA" --samples "$OUT/$arm/samples.jsonl" \
      --out "$OUT/$arm/results.json" --k 1
  fi
  results+=("$OUT/$arm/results.json")
done
"$CODEPLAN" report "${results[@]}" --out "$OUT/report.md"
