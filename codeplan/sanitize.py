"""Turning model output into plans and programs: the one place where answers are cleaned.

    truncate_at_stop   a continuation cut at its first stop string (every backend and stage)
    extract_code       the program in a student's or teacher's answer
    student_plan       a student's sampled plan, cut where its training prompt's next section starts
    teacher_plan       a teacher's answer normalised to a numbered plan, or why it is not one

Pure functions of text, no I/O: distill, generate and the backends all import them from here, so a
fence or stop-string rule cannot differ between stages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from codeplan.prompts import CODE_STOP, PLAN_STOP

# A fenced block: language tag, body; the closing fence must stand on its own line (or the answer
# ends inside the block, cut at max_tokens).
FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```[ \t]*(?=\n|$)|\Z)", re.S)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string (the stop string itself excluded, as OpenAI does);
    the second value says whether a stop string was found."""
    cut = min((pos for pos in (text.find(s) for s in stop if s) if pos >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def student_plan(text: str) -> str:
    """A sampled plan, ended where the student would go on into a code section."""
    return truncate_at_stop(text, PLAN_STOP)[0].strip()


def extract_code(text: str) -> str:
    """The program in a model answer: the fenced Python block when there is one, else the answer
    with leading chatter and a trailing unfinished line dropped where that makes it parse."""
    text = truncate_at_stop(text, CODE_STOP)[0]
    blocks = FENCE.findall(text)
    if blocks:
        python = [body for lang, body in blocks if lang.lower() in ("", "python", "py", "python3")]
        return (python or [blocks[0][1]])[0].strip("\n") + "\n"
    text = text.strip("\n")
    if not text.strip():
        return ""
    return _parsable_part(text) + "\n"


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _parsable_part(text: str) -> str:
    """The longest run of lines that parses, starting within the first few lines (chatter such as
    "Here is the code:" comes first; a sequence cut at max_tokens ends mid-line)."""
    if _parses(text):
        return text
    lines = text.split("\n")
    for start in range(min(4, len(lines))):
        for end in range(len(lines), start, -1):
            part = "\n".join(lines[start:end])
            if part.strip() and _parses(part):
                return part
    return text  # nothing parses: keep it whole, the judge will say compile_error


# ---- a teacher's answer as a numbered plan --------------------------------------------------------

_CODE_LANGS = {"python", "py", "python3", "cpp", "c++", "c", "java", "javascript", "js", "go", "rust", "bash", "sh"}
_NUMBERED = re.compile(r"^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:step\s*(\d+)|(\d+)\s*[.):])\s*(?:\*\*|__)?\s*[:.)\-–]?\s*(?:\*\*|__)?\s*(.*)$",
                       re.I)
_BULLET = re.compile(r"^\s*[-*•+]\s+(.*)$")
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i'm unable|i am unable|as an ai)", re.I)
_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import |for .*:\s*$|while .*:\s*$|if .*:\s*$|return\b|print\(|\w+\s*=\s*\S)")


def teacher_plan(text: str, *, truncated: bool = False) -> tuple[str | None, str]:
    """(numbered plan, "") or (None, reason). Preambles ("Here is the plan:"), code blocks and
    closing chatter are dropped; "Step 1:", "1)", "**1.**" and bullets become "1. ", "2. ", ...
    Text under a step (sub-bullets, wrapped lines) joins that step; a step repeated word for word is
    kept once. `truncated` (the answer hit max_tokens) drops the unfinished last step."""
    if not text or not text.strip():
        return None, "empty answer"
    # An unwrapped block is followed by a blank line: its end ends the list, so chatter after the
    # closing fence does not join the last step.
    body = FENCE.sub(lambda m: "" if _is_code_block(m.group(1), m.group(2)) else f"\n{m.group(2)}\n\n", text)
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    if not any(line.strip() for line in lines):
        return None, "answer holds only code, no plan"
    numbered = [i for i, line in enumerate(lines) if _NUMBERED.match(line)]
    markers = numbered or [i for i, line in enumerate(lines) if _BULLET.match(line)]
    if not markers:
        if _REFUSAL.match(body):
            return None, "refused: " + body.strip().split("\n")[0][:120]
        steps = _prose_steps([line for line in lines if not _CODE_LINE.match(line)])
        return _numbered(steps, truncated)
    steps: list[str] = []
    for k, start in enumerate(markers):
        end = markers[k + 1] if k + 1 < len(markers) else len(lines)
        head = _NUMBERED.match(lines[start]) if numbered else _BULLET.match(lines[start])
        first = (head.group(3) if numbered else head.group(1)) if head else lines[start]
        parts = [_unbold(first)]
        for line in lines[start + 1:end]:
            if not line.strip():
                if k == len(markers) - 1:
                    break  # after the last step, a blank line ends the plan: what follows is chatter
                continue
            sub = _BULLET.match(line)
            after_sentence = not sub and not line[:1].isspace() and parts[-1].rstrip().endswith((".", "!", "?"))
            if after_sentence and k == len(markers) - 1:
                break  # a new sentence flush left after the last finished step: closing remarks
            if after_sentence and line.rstrip().endswith(":"):
                continue  # "Here it is again:" between steps introduces, it is not part of a step
            parts.append(_unbold(sub.group(1) if sub else line.strip()))
        step = " ".join(p for p in parts if p).strip()
        if step:
            steps.append(step)
    return _numbered(steps, truncated)


def _numbered(steps: list[str], truncated: bool) -> tuple[str | None, str]:
    if truncated and len(steps) > 1:
        steps = steps[:-1]
    unique: list[str] = []
    for step in steps:
        if step not in unique:  # a small teacher that loops repeats whole steps
            unique.append(step)
    if not unique:
        return None, "no plan in answer"
    return "\n".join(f"{i}. {step}" for i, step in enumerate(unique, 1)), ""


def _is_code_block(lang: str, content: str) -> bool:
    if lang.lower() in _CODE_LANGS:
        return True
    if lang.lower() in ("", "text", "txt", "markdown", "md", "plaintext"):
        rows = [line for line in content.split("\n") if line.strip()]
        steps = sum(bool(_NUMBERED.match(r) or _BULLET.match(r)) for r in rows)
        return steps == 0 and sum(bool(_CODE_LINE.match(r)) for r in rows) * 2 >= len(rows) > 0
    return True


def _unbold(text: str) -> str:
    return re.sub(r"(\*\*|__)(.+?)\1", r"\2", text).strip().strip("*_").strip()


def _prose_steps(lines: list[str]) -> list[str]:
    """An answer without list markers: one step per paragraph line, or per sentence when it is one
    paragraph. A lone line that introduces something ("Here is the plan:") is not a step."""
    rows = [line.strip() for line in lines if line.strip() and not line.strip().endswith(":")]
    if len(rows) == 1:
        rows = [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", rows[0]) if s.strip()]
    return [_unbold(r) for r in rows]
