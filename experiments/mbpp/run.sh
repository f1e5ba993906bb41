#!/usr/bin/env bash
# The MBPP experiment (issue #11), stage by stage; every command resumes from its outputs, so
# re-running this script after a stop continues where it stopped. From the repository root:
#   bash experiments/mbpp/run.sh                                   every step, in the order below
#   STEPS="zero-shot distill" bash experiments/mbpp/run.sh         some steps
#   ARMS="baseline-rerank" STEPS=arms bash experiments/mbpp/run.sh one arm
# Every codeplan command's cost is appended to out/timings.tsv (see `timed`), so resumed steps add
# lines: the README's cost section sums them.
# Models: GGUF files assembled offline by ../shared/tools/offline-models into experiments/mbpp/models.
# Every student arm generates on llama.cpp from a Q8_0 export made the same way (the base student
# too), so no arm differs from another by its quantisation; the teacher runs as shipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
X=experiments/mbpp
CODEPLAN=${CODEPLAN:-.venv/bin/codeplan}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=../shared/data/mbpp/mbpp.jsonl
STEPS=${STEPS:-zero-shot distill train arms report}
# The arms in report order, the reference (baseline-direct) first. tests/test_experiment_mbpp.py
# reads this line to rebuild the README's summary table in the same order.
REPORT_ORDER="baseline-direct zero-shot-greedy zero-shot-direct zero-shot-plan-sampling baseline-rerank codeplan-direct codeplan-plan-sampling codeplan-best-judged"
TIMINGS=$X/out/timings.tsv
mkdir -p $X/models $X/out
[ -s $TIMINGS ] || printf 'step\tarm\tstarted\twall_s\tuser_s\tsys_s\n' > $TIMINGS
TEACHER=$(../shared/tools/offline-models qwen2.5-coder-1.5b-instruct $X/models | tail -1)
STUDENT=$(../shared/tools/offline-models qwen2.5-coder-0.5b-instruct $X/models | tail -1)
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# timed STEP ARM COMMAND...: run COMMAND (its output as usual), then append a line to timings.tsv:
# the step, the arm (or model), its start (UTC), and bash's `time` of it: wall, user and system
# seconds, user and system including its children (the judge's processes). A failed command gets
# its line too, and the script stops as before.
timed() {
  local TIMEFORMAT="$1"$'\t'"$2"$'\t'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"$'\t%3R\t%3U\t%3S'
  shift 2
  { time "$@" 2>&3; } 3>&2 2>> $TIMINGS
}

# A model folder -> its Q8_0 GGUF (once).
gguf_of() {  # gguf_of FOLDER OUT.gguf
  [ -f "$2" ] || timed export "${2#$X/out/}" $CODEPLAN export --model "$1" --out "$2" --dtype q8_0 >&2
  echo "$2"
}

# The data the arms run on: MBPP's test split, or (step transfer) HumanEval+, which has no splits.
EVAL_DATA=(--data $DATA --split test)

arm() {  # arm NAME MODEL_SPEC [generate flags...]: generate + evaluate, B = 8 programs per problem
  local name=$1 model=$2; shift 2
  case " ${ARMS:-all} " in *" all "*|*" $name "*) ;; *) return 0 ;; esac
  timed generate $name $CODEPLAN generate --config $X/generate.yaml "${EVAL_DATA[@]}" --model "$model" \
    --out $X/out/$name/samples.jsonl "$@"
  timed evaluate $name $CODEPLAN evaluate "${EVAL_DATA[@]}" --samples $X/out/$name/samples.jsonl \
    --out $X/out/$name/results.json --k 1
}

# 0. the base student, asked the way it was built to be asked (its chat template).
if step zero-shot; then
  base=$($PYTHON -c "from codeplan.modeling import resolve_model_source as r; print(r('$STUDENT')[0])")
  BASE=llamacpp:$(gguf_of "$base" $X/out/base-q8_0.gguf)
  arm zero-shot-greedy        "$BASE" --strategy direct --num-samples 1 --code-temperature 0
  arm zero-shot-direct        "$BASE" --strategy direct --num-samples 8 --budget 8
  arm zero-shot-plan-sampling "$BASE" --strategy plan-sampling --num-plans 2 --codes-per-plan 3 --num-samples 2 --budget 8
fi

# 1. distill: the teacher reads each training problem's reference solution (backward reasoning).
if step distill; then
  timed distill - $CODEPLAN distill --config $X/distill.yaml --data $DATA --split train --teacher "llamacpp:$TEACHER" \
    --out $X/out/plans.jsonl
fi

# 2. train: the baseline (code task) and CodePLAN (code + plan tasks), same steps, same code examples.
if step train; then
  for mode in baseline codeplan; do
    timed train $mode $CODEPLAN train --config $X/train.yaml --data $DATA --split train --plans $X/out/plans.jsonl \
      --student "$STUDENT" --mode $mode --out $X/out/$mode/model
  done
fi

# 3. generate + 4. evaluate: the trained students' arms on all 500 test problems.
if step arms; then
  BASELINE=llamacpp:$(gguf_of $X/out/baseline/model $X/out/baseline/model-q8_0.gguf)
  CODEPLAN_STUDENT=llamacpp:$(gguf_of $X/out/codeplan/model $X/out/codeplan/model-q8_0.gguf)
  arm baseline-direct        "$BASELINE" --strategy direct --num-samples 8 --budget 8
  arm baseline-rerank        "$BASELINE" --strategy direct-rerank --budget 8 --num-samples 1
  arm codeplan-direct        "$CODEPLAN_STUDENT" --strategy direct --num-samples 8 --budget 8
  arm codeplan-plan-sampling "$CODEPLAN_STUDENT" --strategy plan-sampling --num-plans 2 --codes-per-plan 3 --num-samples 2 --budget 8
  arm codeplan-best-judged   "$CODEPLAN_STUDENT" --strategy plan-sampling --num-plans 2 --codes-per-plan 4 --num-samples 1 --final best-judged --budget 8
fi

# 4b. transfer: the same students, unchanged, on HumanEval+ (164 problems; 146 have public examples
# in their docstrings, the others fall back to likelihood for plan selection). Report it apart:
#   codeplan report experiments/mbpp/out/humanevalplus/*/results.json --out experiments/mbpp/report-humanevalplus.md
if step transfer; then
  BASELINE=llamacpp:$(gguf_of $X/out/baseline/model $X/out/baseline/model-q8_0.gguf)
  CODEPLAN_STUDENT=llamacpp:$(gguf_of $X/out/codeplan/model $X/out/codeplan/model-q8_0.gguf)
  EVAL_DATA=(--data ../shared/data/humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz)
  arm humanevalplus/baseline-direct        "$BASELINE" --strategy direct --num-samples 8 --budget 8
  arm humanevalplus/baseline-rerank        "$BASELINE" --strategy direct-rerank --budget 8 --num-samples 1
  arm humanevalplus/codeplan-direct        "$CODEPLAN_STUDENT" --strategy direct --num-samples 8 --budget 8
  arm humanevalplus/codeplan-plan-sampling "$CODEPLAN_STUDENT" --strategy plan-sampling --num-plans 2 --codes-per-plan 3 --num-samples 2 --budget 8
fi

# 5. report: every arm that has results, against the baseline with direct sampling; the README's
# summary table (between its summary markers) is replaced by report.md's.
if step report; then
  results=()
  for name in $REPORT_ORDER; do
    if [ -f $X/out/$name/results.json ]; then results+=($X/out/$name/results.json); fi
  done
  if [ ${#results[@]} -gt 0 ]; then
    timed report - $CODEPLAN report "${results[@]}" --out $X/report.md --html $X/report.html --summary-into $X/README.md
  fi
fi
