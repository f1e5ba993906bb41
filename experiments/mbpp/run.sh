#!/usr/bin/env bash
# The MBPP experiment (issue #11), stage by stage; every command resumes from its outputs, so
# re-running this script after a stop continues where it stopped. Run from the repository root:
#   bash experiments/mbpp/run.sh            (all arms)      ARMS="baseline-direct" bash ...   (some)
# Models: GGUF files assembled offline by ../shared/tools/offline-models into experiments/mbpp/models.
set -euo pipefail
cd "$(dirname "$0")/../.."
X=experiments/mbpp
CODEPLAN=${CODEPLAN:-.venv/bin/codeplan}
DATA=../shared/data/mbpp/mbpp.jsonl
mkdir -p $X/models $X/out
TEACHER=$(../shared/tools/offline-models qwen2.5-coder-1.5b-instruct $X/models | tail -1)
STUDENT=$(../shared/tools/offline-models qwen2.5-coder-0.5b-instruct $X/models | tail -1)

# 1. distill: the teacher reads each training problem's reference solution (backward reasoning).
$CODEPLAN distill --config $X/distill.yaml --data $DATA --split train --teacher "hf:$TEACHER" --out $X/out/plans.jsonl

# 2. train: the baseline (code task) and CodePLAN (code + plan tasks), same steps, same code examples.
for mode in baseline codeplan; do
  $CODEPLAN train --config $X/train.yaml --data $DATA --split train --plans $X/out/plans.jsonl \
    --student "$STUDENT" --mode $mode --out $X/out/$mode/model
done

# 3. generate + 4. evaluate: every arm on all 500 test problems, B = 8 generated programs per problem.
arm() {  # arm NAME MODEL [generate flags...]
  local name=$1 model=$2; shift 2
  case " ${ARMS:-all} " in *" all "*|*" $name "*) ;; *) return 0 ;; esac
  $CODEPLAN generate --config $X/generate.yaml --data $DATA --split test --model "$model" \
    --out $X/out/$name/samples.jsonl "$@"
  $CODEPLAN evaluate --data $DATA --split test --samples $X/out/$name/samples.jsonl \
    --out $X/out/$name/results.json --k 1
}
arm zero-shot-greedy        "$STUDENT" --strategy direct --num-samples 1 --code-temperature 0 --chat-template
arm zero-shot-direct        "$STUDENT" --strategy direct --num-samples 8 --budget 8 --chat-template
arm zero-shot-plan-sampling "$STUDENT" --strategy plan-sampling --num-plans 2 --codes-per-plan 3 --num-samples 2 --budget 8 --chat-template
arm baseline-direct         $X/out/baseline/model --strategy direct --num-samples 8 --budget 8
arm baseline-rerank         $X/out/baseline/model --strategy direct-rerank --budget 8 --num-samples 1
arm codeplan-direct         $X/out/codeplan/model --strategy direct --num-samples 8 --budget 8
arm codeplan-plan-sampling  $X/out/codeplan/model --strategy plan-sampling --num-plans 2 --codes-per-plan 3 --num-samples 2 --budget 8
arm codeplan-best-judged    $X/out/codeplan/model --strategy plan-sampling --num-plans 2 --codes-per-plan 4 --num-samples 1 --final best-judged --budget 8

# 5. report: every arm against the baseline with direct sampling.
results=()
for name in baseline-direct zero-shot-greedy zero-shot-direct zero-shot-plan-sampling baseline-rerank \
            codeplan-direct codeplan-plan-sampling codeplan-best-judged; do
  [ -f $X/out/$name/results.json ] && results+=($X/out/$name/results.json)
done
$CODEPLAN report "${results[@]}" --out $X/report.md --html $X/report.html
