"""Every prompt template of the toolkit, in one place.

The student prompts are the CodePLAN release's plain-text prompts (no new tokens); the teacher
prompts are its backward-reasoning chat. Change a template here and every stage follows.
"""

from __future__ import annotations

from codeplan.errors import SetupError
from codeplan.problems import Problem

# ---- student (training and inference) ------------------------------------------------------

CODE_TASK_TAG = "[GEN_CODE]"
PLAN_TASK_TAG = "[GEN_PLAN]"
STEP_BY_STEP = "Let's think step by step:"


def _question_block(problem: Problem) -> str:
    starter = problem.starter_code.strip("\n")
    parts = ["QUESTION:", problem.statement.strip("\n")]
    if starter:
        parts.append(starter)
    parts.append(problem.answer_type)
    return "\n".join(parts) + "\n"


def code_prompt(problem: Problem) -> str:
    """Code task: problem -> program."""
    return f"{CODE_TASK_TAG}\n{_question_block(problem)}ANSWER:\n"


def plan_prompt(problem: Problem) -> str:
    """Plan task: problem -> numbered solution plan."""
    return f"{PLAN_TASK_TAG}\n{_question_block(problem)}{STEP_BY_STEP}\n"


def plan_conditioned_code_prompt(problem: Problem, plan: str) -> str:
    """Problem + plan -> program: the prompt used at inference after a plan is chosen."""
    return f"{plan_prompt(problem)}{plan.strip()}\nANSWER:\n"


# ---- teacher (distillation) -----------------------------------------------------------------

TEACHER_SYSTEM = "You are an assistant that helps programmers understand the code step by step."

# One worked example (code, then its numbered plan), written for this project.
TEACHER_EXAMPLE_CODE = """n = int(input())
values = list(map(int, input().split()))
best = values[0]
for v in values[1:]:
    if v > best:
        best = v
print(best)"""

TEACHER_EXAMPLE_PLAN = """1. Read the number of values n.
2. Read the n integers into a list.
3. Keep the first value as the largest seen so far.
4. Go through the remaining values; whenever one is larger than the largest so far, remember it.
5. Print the largest value."""

BACKWARD_INSTRUCTION = "Write a step-by-step solution plan following the above code:"
BACKWARD_INSTRUCTION_MBPP = "Write steps according to the code:"
FORWARD_INSTRUCTION = "Write a step-by-step solution plan for the above problem, without writing code:"


def backward_messages(problem: Problem, solution: str, *, include_statement: bool = False) -> list[dict[str, str]]:
    """Backward reasoning: the teacher reads a correct solution and writes the plan behind it."""
    instruction = BACKWARD_INSTRUCTION_MBPP if problem.source == "mbpp" else BACKWARD_INSTRUCTION
    user = f"code:\n{solution.strip()}\n{instruction}"
    if include_statement:
        user = f"problem:\n{problem.statement.strip()}\n{user}"
    return [
        {"role": "system", "content": TEACHER_SYSTEM},
        {"role": "user", "content": f"code:\n{TEACHER_EXAMPLE_CODE}\n{BACKWARD_INSTRUCTION}"},
        {"role": "assistant", "content": TEACHER_EXAMPLE_PLAN},
        {"role": "user", "content": user},
    ]


def forward_messages(problem: Problem) -> list[dict[str, str]]:
    """Forward reasoning (the ablation): the teacher sees only the problem."""
    return [
        {"role": "system", "content": TEACHER_SYSTEM},
        {"role": "user", "content": f"problem:\n{problem.statement.strip()}\n{_starter_note(problem)}{FORWARD_INSTRUCTION}"},
    ]


def _starter_note(problem: Problem) -> str:
    return f"starter code:\n{problem.starter_code.strip()}\n" if problem.starter_code.strip() else ""



# Plan faithfulness check (`distill --verify`): a model writes code from the plan, the judge runs it.
VERIFY_SYSTEM = "You are an expert Python programmer. You write programs exactly as a plan describes."
VERIFY_INSTRUCTION = ("Write a complete Python 3 program that carries out the plan above, step by step. "
                      "Answer with the code only, in one ```python block.")


def verify_messages(problem: Problem, plan: str, *, include_statement: bool = False) -> list[dict[str, str]]:
    """Code from a plan. By default the model sees the plan and the program's interface only (how it
    reads input or which function it defines), not the statement: a plan that does not carry the
    solution then fails, which is the point of the check."""
    parts = [f"problem:\n{problem.statement.strip()}"] if include_statement else []
    parts.append(f"plan:\n{plan.strip()}")
    parts.append(_interface_note(problem))
    parts.append(VERIFY_INSTRUCTION)
    return [{"role": "system", "content": VERIFY_SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


def _interface_note(problem: Problem) -> str:
    if problem.starter_code.strip():
        return f"Complete this starter code:\n{problem.starter_code.strip()}"
    if problem.kind == "stdin":
        return "The program reads standard input and prints to standard output."
    if problem.entry_point:
        return f"Define the function `{problem.entry_point}`; it is called directly, nothing is read from input."
    return "Define the function the plan describes; it is called directly, nothing is read from input."


# ---- chat-template wrapping (instruct students) -------------------------------------------------

def chat_prompt(tokenizer, prompt: str) -> str:
    """Wrap a student prompt as one user turn in the tokenizer's chat template, ending where the
    assistant's reply starts. Training (`chat_template: true`) and generation must both use it."""
    if not getattr(tokenizer, "chat_template", None):
        raise SetupError("the student's tokenizer has no chat template: train without chat_template")
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


# ---- where a student's answer ends ------------------------------------------------------------

# A student continues past its answer into the next prompt section it saw in training (an
# untrained or lightly trained one especially); these markers end plans and programs there.
PLAN_STOP = ("\nANSWER:", "[GEN_CODE]", "[GEN_PLAN]", "\nQUESTION:")
CODE_STOP = ("[GEN_CODE]", "[GEN_PLAN]", "\nQUESTION:", "\nANSWER:", "\nLet's think step by step:")
