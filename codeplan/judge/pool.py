"""The judge: pre-started sandboxed workers, one program at a time each, verdicts in input order.

The judge process holds the expected outputs and compares; workers only ever receive program code
and test inputs (see `_worker.py`), so a program cannot find an expected output in its memory, in
a file, or in another process.
"""

from __future__ import annotations

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

from codeplan.errors import SetupError
from codeplan.judge import compare, policy
from codeplan.judge._worker import Opaque, decode_value, encode_value, send
from codeplan.judge.asserts import split_assert
from codeplan.judge.calibrate import (REFERENCE_FAILED, References, evalplus_args, every_test, outputs_job,
                                      reference_limits, reference_value, slowest_passing)
from codeplan.judge.config import DEFAULT_MEMORY_MB, EVALPLUS_MEMORY_MB, JudgeConfig
from codeplan.judge.sandbox import WORKER_ENV, worker_command, switch_user
from codeplan.problems import Problem, TestCase

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

    def __init__(self, cfg: JudgeConfig, scratch: str, seccomp: bytes | None = None) -> None:
        argv, paths = worker_command(cfg.python, cfg.sandbox, cfg.site_packages)
        self.log = tempfile.TemporaryFile(dir=scratch)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=dict(WORKER_ENV), cwd=scratch, start_new_session=True)
        self.out_fd = self.proc.stdout.fileno()
        self.in_fd = self.proc.stdin.fileno()
        self.alive = True
        self.ending = False  # an `end` was sent and its `ended` reply is still to be read
        self.send({"sandbox": cfg.sandbox, "switch_user": switch_user() if cfg.sandbox else None, "sys_path": paths,
                   "seccomp": seccomp.hex() if seccomp else None})

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


class Judge:
    """Pre-forked sandboxed workers; `run` judges programs on all of them, results in input order."""

    def __init__(self, cfg: JudgeConfig | None = None) -> None:
        self.cfg = cfg or JudgeConfig()
        self.size = max(1, self.cfg.workers or os.cpu_count() or 1)
        self._scratch = tempfile.TemporaryDirectory(prefix="codeplan-judge-")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        self.references = References(self.cfg)
        self.started = False
        self._closing = False
        self._filter: bytes | None = None  # the seccomp program every worker loads, built at start
        self._ray = None  # executor "ray": the RayPool that judges on the cluster instead of local workers

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
        if self.cfg.executor == "ray":
            self._ray = start_ray_pool(self.cfg)
            self.started = True
            return
        if self.cfg.sandbox:
            self._filter = policy.build(policy.resolve(self.cfg.syscall_policy))
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
        if self._ray is not None:
            self._ray.close()
            self._ray = None
        for worker in self._workers:
            worker.close()
        self._workers.clear()
        self._scratch.cleanup()
        self.started = False

    def _spawn(self) -> _Worker:
        return _Worker(self.cfg, self._scratch.name, self._filter)

    def _check_ready(self, worker: _Worker, hello: dict) -> None:
        if not hello.get("ready"):
            raise SetupError(f"the judge's worker failed to start: {hello}: {worker.stderr_text()}")
        if self.cfg.sandbox and (hello.get("network") or set(hello.get("network_interfaces", [])) - {"lo"}):
            raise SetupError("the sandbox has network access (bubblewrap --unshare-net did not take effect); refusing to run programs")
        if self._filter is not None and hello.get("seccomp") != "refused":
            raise SetupError(f"the judge's syscall filter does not take effect in the sandbox ({hello.get('seccomp')}); "
                             "refusing to run programs")

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
        self.prepare_references(tasks)
        if self._ray is not None:
            return self._ray.run(tasks, self.references, on_result)
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
                    result = self._judge_on(worker, task)
                    if not worker.alive:  # stopped mid-program (timeouts in a row): the next gets a fresh one
                        worker = self._replace(worker)
                    return result
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
        cpu = self.references.cpu_limit(problem)
        memory = self.cfg.memory_mb or (EVALPLUS_MEMORY_MB if problem.outputs_from_solution else DEFAULT_MEMORY_MB)
        return {"cpu": cpu, "wall": cpu * self.cfg.wall_factor + 1.0, "memory_mb": memory,
                "processes": self.cfg.max_processes, "open_files": self.cfg.open_files,
                "output_bytes": int(self.cfg.output_mb * (1 << 20)), "file_mb": self.cfg.scratch_mb}

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
               "input_file": compat and problem.kind == "stdin",  # the test's input also as ./input.txt
               "limits": limits, "recursion_limit": self.cfg.recursion_limit, "tests": total}
        expected_values = self.references.expected(problem, task.tests) if problem.outputs_from_solution else None
        messages = [self._test_message(problem, test, index, expected_values) for index, test in enumerate(tests)]
        # Without early exit every test runs, so they travel with the program (one message, no
        # round trip per test); with it, the judge decides after each verdict whether to go on.
        sent = 1 if task.early_exit else total
        job["run"] = [message for message, _ in messages[:sent]]
        passed, verdicts, cpu, first_fail, detail, failure = 0, [], 0.0, None, "", None
        timeouts, cap = 0, self.cfg.max_timeouts if not probing and test_cpu is None else None
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
                timeouts = timeouts + 1 if verdict == "timeout" else 0
                if verdict == "pass":
                    passed += 1
                    continue
                if first_fail is None:
                    first_fail, detail = verdict, f"test {index}: {why}"
                    failure = failure_snippet(index, tests[index], message, raw, expected)
                if sent == index + 1 and (verdict == "compile_error" or task.early_exit):
                    break
                if cap and timeouts >= cap and index + 1 < total:
                    # The worker is running the rest already: stopping it is the only way to skip them.
                    worker.kill()
                    detail += f"; stopped after {cap} timeouts in a row, {total - index - 1} tests not run"
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

    def _test_message(self, problem: Problem, test: TestCase, index: int,
                      expected_values: list | None) -> tuple[dict, Any]:
        if problem.kind == "stdin":
            text = "\n".join(map(str, test.input)) if isinstance(test.input, list) else str(test.input or "")
            return {"op": "test", "mode": "stdin", "stdin": text}, test.output
        if problem.kind == "call":
            if problem.outputs_from_solution:
                args = evalplus_args(problem, test)
                expected = expected_values[index] if expected_values else None
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

    # ------------------------------------------------------------------ reference solutions (calibrate.py)
    # What evaluate's cache stores and restores.
    def prepare_references(self, tasks: list[JudgeTask]) -> None:
        """Expected outputs of HumanEval+/MBPP+ problems (the first reference solution's), and with
        `calibrate` the other problems' reference times: each run here once per problem."""
        to_derive, to_time = self.references.missing(task.problem for task in tasks)
        if self._ray is not None:
            self._ray.prepare_references(self.references, to_derive, to_time)
            return
        derived = self._map(to_derive, lambda problem: self._on_a_worker(self._reference_on, problem))
        for problem, (values, cpu) in zip(to_derive, derived):
            self.references.set_outputs(problem, values, cpu)
        timed = self._map(to_time, lambda problem: self._on_a_worker(self._timing_on, problem))
        for problem, cpu in zip(to_time, timed):
            self.references.set_time(problem, cpu)

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

    def _timing_on(self, worker: _Worker, problem: Problem) -> float:
        """The first reference solution judged on every test with room to finish (`slowest_passing`)."""
        times: list[float] = []
        result = self._judge_on(worker, JudgeTask(problem=every_test(problem), code=problem.solutions[0]),
                                limits=reference_limits(self.limits(problem), self.cfg.wall_factor), test_cpu=times)
        return slowest_passing(times, result.test_verdicts)

    def _reference_on(self, worker: _Worker, problem: Problem) -> tuple[list[Any], float]:
        """The first reference solution's value on every test, and its slowest test's CPU seconds."""
        limits = reference_limits(self.limits(problem), self.cfg.wall_factor)
        job = outputs_job(problem, limits, self.cfg.recursion_limit)
        values: list[Any] = []
        slowest = 0.0
        try:
            reply = self._send_program(worker, job, 60.0)
            if not reply.get("compiled"):
                raise SetupError(f"problem {problem.id}: the reference solution does not compile: {reply.get('compile_error')}")
            for _ in job["run"]:
                raw = worker.recv(limits["wall"] + 30.0)
                if "error" in raw or "ended" in raw:
                    raise WorkerError(f"program session broke: {raw.get('error', 'init exited')}")
                slowest = max(slowest, float(raw.get("cpu", 0.0)))
                values.append(reference_value(raw))
        except (WorkerError, ValueError, KeyError):
            worker.kill()
            raise
        finally:
            if worker.alive:
                self._end_program(worker)
        return values, slowest


def start_ray_pool(cfg: JudgeConfig) -> Any:
    """The Ray executor's driver. Imported here, only when asked for: Ray is an optional extra."""
    try:
        from codeplan.judge.ray_pool import RayPool
    except ImportError as err:
        raise SetupError(f"--executor ray needs Ray ({err}): pip install 'codeplan[ray]'") from None
    return RayPool(cfg)


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
