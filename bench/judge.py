"""Judge throughput against a fresh `python` per program, and reference-solution pass rates.

    .venv/bin/python bench/judge.py                 # throughput: sandboxed judge vs fresh interpreters
    .venv/bin/python bench/judge.py --references    # pass rates of the benchmarks' reference solutions
    .venv/bin/python bench/judge.py --policy        # cost of the programs' syscall filter (on vs off)
    .venv/bin/python bench/judge.py --ray           # the judge on Ray: 1 and 2 actors against the local pool

Throughput runs the same programs every way in the same run: reference solutions from
../shared/data (APPS, MBPP) plus wrong versions made by mutating them, with the same parallelism
as the judge. Two baselines, neither sandboxed:
  per program: one `python` per program that runs all of its tests in-process, exec'ing the code
               once per test as the official APPS harness does (the kindest reading);
  per run:     one `python` per run of the program, the way a contest judge runs a script:
               `python prog.py < test.in` for each test of a stdin program; an assertion program
               runs with all its asserts in one process (so it is the same as per program).
Both do the judge's APPS work too (the harness's pre-imported names, function wrapping), so all
sides reach the same verdicts. Prints programs/s of each and the ratios, for APPS, MBPP and all
programs, and a ceiling: the per-program baseline's CPU time over the programs' own, which no
harness can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeplan.config import DataConfig  # noqa: E402
from codeplan.data import load_problems  # noqa: E402
from codeplan.judge import Judge, JudgeConfig, JudgeTask, default_timeout, policy  # noqa: E402
from codeplan.judge._worker import APPS_PREAMBLE, wrap_in_function  # noqa: E402
from codeplan.judge.compare import apps_call_equal, apps_stdin_equal  # noqa: E402
from codeplan.problems import Problem  # noqa: E402

SHARED = Path(os.environ.get("CODEPLAN_SHARED", ROOT.parent / "shared")) / "data"  # env: a checkout elsewhere

# The baseline harness: one fresh interpreter per program, all tests in-process (like APPS's). It
# does what the judge does for APPS: the harness's pre-imported names in every test's namespace,
# and a program that only compiles as a function body (top-level `return`/`nonlocal`) run wrapped,
# so both sides do the same work and agree on verdicts.
BASELINE = r'''
import io, json, sys
job = json.loads(sys.stdin.read())
preamble = {}
if job["preamble"]:
    exec(job["preamble"], preamble)
    del preamble["__builtins__"]
results = []
real_stdout = sys.stdout
def fresh():
    return {"__name__": "__main__", **preamble}
try:
    code = compile(job["code"], "<program>", "exec")
except SyntaxError:
    code = None
for test in job["tests"]:
    out = io.StringIO()
    try:
        if code is None:
            raise SyntaxError("does not compile")
        if job["kind"] == "stdin":
            sys.stdin, sys.stdout = io.StringIO(test), out
            try:
                exec(code, fresh())
            except SystemExit:
                pass
            finally:
                sys.stdin, sys.stdout = sys.__stdin__, real_stdout
            results.append({"ok": True, "stdout": out.getvalue()})
        elif job["kind"] == "call":
            ns = fresh()
            exec(code, ns)
            fn = getattr(ns["Solution"](), job["entry_point"]) if "Solution" in ns else ns[job["entry_point"]]
            value = fn(*test)
            results.append({"ok": True, "value": list(value) if isinstance(value, tuple) else value})
        else:
            ns = fresh()
            exec(code, ns)
            exec(job["setup"] + "\n" + test, ns)
            results.append({"ok": True})
    except BaseException as exc:
        sys.stdin, sys.stdout = sys.__stdin__, real_stdout
        results.append({"ok": False, "error": type(exc).__name__})
print(json.dumps(results, default=repr))
'''


def mutate(code: str, rng: random.Random) -> str | None:
    """A plausible wrong program: flip one operator or constant."""
    edits = [(r" \+ ", " - "), (r" - ", " + "), (r" < ", " <= "), (r" > ", " >= "), (r"==", "!="), (r"\b1\b", "2"),
             (r"\bmax\(", "min("), (r"\bmin\(", "max(")]
    rng.shuffle(edits)
    for pattern, replacement in edits:
        matches = list(re.finditer(pattern, code))
        if matches:
            match = rng.choice(matches)
            return code[:match.start()] + replacement + code[match.end():]
    return None


def programs(limit_apps: int, limit_mbpp: int, seed: int = 0) -> list[tuple[Problem, str]]:
    rng = random.Random(seed)
    chosen: list[tuple[Problem, str]] = []
    apps = load_problems(DataConfig(path=str(SHARED / "apps" / "apps_train_subset.jsonl")))
    for problem in apps[:limit_apps]:
        for code in problem.solutions[:2]:
            chosen.append((problem, code))
        if problem.solutions and (wrong := mutate(problem.solutions[0], rng)):
            chosen.append((problem, wrong))
    mbpp = load_problems(DataConfig(path=str(SHARED / "mbpp" / "mbpp.jsonl")))
    for problem in mbpp[:limit_mbpp]:
        chosen.append((problem, problem.solutions[0]))
        if wrong := mutate(problem.solutions[0], rng):
            chosen.append((problem, wrong))
    rng.shuffle(chosen)
    return chosen


def as_judged(problem: Problem, code: str) -> str:
    """The program as the judge runs it: a stdin program that only compiles as a function body
    (top-level `return`/`nonlocal`) wrapped in one, as the APPS harness does."""
    if problem.kind != "stdin":
        return code
    try:
        compile(code, "<program>", "exec")
        return code
    except SyntaxError:
        return wrap_in_function(code)


def baseline_one(problem: Problem, code: str, timeout: float) -> bool:
    tests = problem.hidden_tests
    apps = problem.kind in ("stdin", "call")  # the judge's APPS-compatible defaults for these kinds
    job = {"kind": problem.kind, "code": as_judged(problem, code), "entry_point": problem.entry_point,
           "setup": problem.test_setup, "preamble": APPS_PREAMBLE if apps else "",
           "tests": [("\n".join(t.input) if isinstance(t.input, list) else t.input) if problem.kind == "stdin" else t.input
                     for t in tests]}
    try:
        proc = subprocess.run([sys.executable, "-c", BASELINE], input=json.dumps(job), capture_output=True, text=True,
                              timeout=timeout * len(tests) + 1)
        results = json.loads(proc.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        return False
    for test, result in zip(tests, results):
        if not result["ok"]:
            return False
        if problem.kind == "stdin" and not apps_stdin_equal(result["stdout"], test.output):
            return False
        if problem.kind == "call" and not apps_call_equal(result["value"], test.output):
            return False
    return len(results) == len(tests)


def baseline_runs(problem: Problem, code: str, timeout: float, scratch: Path) -> bool:
    """A fresh interpreter per run: each stdin test is `python prog.py < input`; an assertion
    program runs once with every assert after it."""
    tests = problem.hidden_tests
    script = scratch / f"prog_{threading.get_ident()}.py"
    if problem.kind != "stdin":
        script.write_text("\n".join([code, problem.test_setup, *(str(t.input) for t in tests)]), encoding="utf-8")
        try:
            return subprocess.run([sys.executable, str(script)], capture_output=True, timeout=timeout * len(tests) + 1,
                                  stdin=subprocess.DEVNULL).returncode == 0
        except subprocess.TimeoutExpired:
            return False
    script.write_text(APPS_PREAMBLE + as_judged(problem, code), encoding="utf-8")  # the harness's imports first
    passed = True
    for test in tests:
        stdin = "\n".join(test.input) if isinstance(test.input, list) else str(test.input)
        try:
            proc = subprocess.run([sys.executable, str(script)], input=stdin, capture_output=True, text=True,
                                  timeout=timeout + 1)
            passed = passed and proc.returncode == 0 and apps_stdin_equal(proc.stdout, test.output)
        except subprocess.TimeoutExpired:
            passed = False
    return passed


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (each baseline interpreter)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], list]) -> tuple[float, list]:
    started = time.perf_counter()
    values = fn()
    return time.perf_counter() - started, values


def fast_only(items: list[tuple[Problem, str]], workers: int) -> list[tuple[Problem, str]]:
    """Programs that hit the CPU limit cost that limit on every test whichever way they are run,
    so they measure the limit, not the harness: screen them out with a short limit first."""
    with Judge(JudgeConfig(workers=workers, timeout=0.5)) as quick:
        verdicts = quick.run([JudgeTask(problem=p, code=c) for p, c in items])
    # Any test over the limit counts, not only the first failing one (a wrong answer on test 1
    # can hide a slow test 2).
    fast = ["timeout" not in v.test_verdicts for v in verdicts]
    print(f"left out {fast.count(False)} programs that exceed 0.5 s CPU on a test (--include-slow keeps them)")
    return [item for item, keep in zip(items, fast) if keep]


def throughput(args: argparse.Namespace) -> None:
    items = programs(args.apps, args.mbpp)
    workers = args.workers or os.cpu_count() or 1
    cfg = JudgeConfig(workers=workers, timeout=args.timeout)
    with Judge(cfg) as judge:
        if not args.include_slow:
            items = fast_only(items, workers)
        groups = {"APPS (stdin)": [i for i in items if i[0].kind == "stdin"],
                  "MBPP (assert)": [i for i in items if i[0].kind == "assert"], "all": items}
        scratch = Path(tempfile.mkdtemp(prefix="codeplan-bench-"))
        for name, group in groups.items():
            judge_s, results = timed(lambda: judge.run([JudgeTask(problem=p, code=c) for p, c in group]))
            limit = lambda problem: args.timeout or default_timeout(problem)  # noqa: E731
            with ThreadPoolExecutor(workers) as pool:
                before = children_cpu()
                program_s, per_program = timed(lambda: list(pool.map(
                    lambda item: baseline_one(item[0], item[1], limit(item[0])), group)))
                baseline_cpu = children_cpu() - before
                if args.baseline == "both":
                    run_s, per_run = timed(lambda: list(pool.map(
                        lambda item: baseline_runs(item[0], item[1], limit(item[0]), scratch), group)))
            line = (f"{name}: {len(group)} programs, {sum(len(p.hidden_tests) for p, _ in group)} tests, {workers} workers | "
                    f"judge (sandboxed) {len(group) / judge_s:.1f} programs/s ({sum(r.passed for r in results)} pass) | "
                    f"python per program {len(group) / program_s:.1f}/s ({sum(per_program)} pass): {program_s / judge_s:.1f}x")
            # The programs' own CPU time is paid however they are run: a harness that cost nothing
            # would still be at most this many times faster than the per-program baseline.
            work = sum(r.cpu_seconds for r in results)
            line += f" (ceiling for any harness: {baseline_cpu / work:.1f}x)" if work > 0 else ""
            if args.baseline == "both":
                line += f" | python per run {len(group) / run_s:.1f}/s ({sum(per_run)} pass): {run_s / judge_s:.1f}x"
            print(line, flush=True)
        shutil.rmtree(scratch, ignore_errors=True)


def syscall_cost(program: bytes | None, calls: int = 200_000) -> tuple[float, float]:
    """(microseconds to load `program` into a fresh process, nanoseconds per getppid() after it),
    measured in a forked child so the filter stays there."""
    from codeplan.judge import _worker

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _worker.set_filter(program)
            _worker.libc().prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE: libc and prctl looked up already, as in I
            start = time.perf_counter()
            if program is not None:
                _worker.libc().prctl(_worker.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
                _worker.check(_worker.libc().prctl(_worker.PR_SET_SECCOMP, _worker.SECCOMP_MODE_FILTER,
                                                   _worker.seccomp_args(), 0, 0), "seccomp")
            load = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(calls):
                os.getppid()
            os.write(write, json.dumps([load * 1e6, (time.perf_counter() - start) / calls * 1e9]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as handle:
        load_us, per_call_ns = json.loads(handle.read())
    os.waitpid(pid, 0)
    return load_us, per_call_ns


def policy_cost(args: argparse.Namespace) -> None:
    """The same programs judged with the default syscall policy and with none, in alternating rounds
    (so load changes hit both alike): programs/s of each, and the filter's cost per program."""
    items = programs(args.apps, args.mbpp)
    workers = args.workers or os.cpu_count() or 1
    if not args.include_slow:
        items = fast_only(items, workers)
    tasks = [JudgeTask(problem=p, code=c) for p, c in items]
    judges = {name: Judge(JudgeConfig(workers=workers, timeout=args.timeout, syscall_policy=name))
              for name in ("auto", "off")}
    seconds: dict[str, list[float]] = {name: [] for name in judges}
    verdicts: dict[str, list[str]] = {}
    try:
        for judge in judges.values():
            judge.start()
            judge.run(tasks[:20])  # warm up: modules loaded, references cached
        for _ in range(args.rounds):
            for name, judge in judges.items():
                elapsed, results = timed(lambda: judge.run(tasks))
                seconds[name].append(elapsed)
                verdicts[name] = [r.verdict for r in results]
    finally:
        for judge in judges.values():
            judge.close()
    middle = {name: sorted(values)[len(values) // 2] for name, values in seconds.items()}
    changed = sum(a != b for a, b in zip(verdicts["auto"], verdicts["off"]))
    print(f"{len(tasks)} programs, {workers} workers, {args.rounds} alternating rounds each, median round:")
    for name, label in (("auto", f"policy {policy.resolve('auto')}"), ("off", "no filter")):
        rounds = ", ".join(f"{value:.2f}" for value in seconds[name])
        print(f"  {label}: {len(tasks) / middle[name]:.1f} programs/s (rounds: {rounds} s)")
    per_program = (middle["auto"] - middle["off"]) / len(tasks) * workers * 1000
    print(f"  filter's cost: {middle['auto'] / middle['off']:.3f}x time, {per_program:+.2f} ms per program per worker; "
          f"verdicts that differ: {changed}")
    # The same cost from below, free of the machine's load: loading the filter and one cheap call.
    program = policy.build(policy.resolve("auto"))
    (load_us, with_filter), (_, without) = syscall_cost(program), syscall_cost(None)
    print(f"  per program process: loading the filter {load_us:.0f} us; per system call: {with_filter:.0f} ns "
          f"with it, {without:.0f} ns without ({with_filter - without:+.0f} ns)")


def ray_scaling(args: argparse.Namespace) -> None:
    """Programs/s of the local pool with 1 and 2 workers and of the Ray executor with 1 and 2 actors
    (one sandboxed worker each) on a local Ray cluster of 2 CPUs, in alternating rounds; each Ray
    figure over the local pool's with as many workers is the Ray executor's overhead."""
    import ray  # optional extra codeplan[ray]: only this measurement needs it

    items = programs(args.apps, args.mbpp)
    if not args.include_slow:
        items = fast_only(items, 2)
    tasks = [JudgeTask(problem=p, code=c) for p, c in items]
    ray.init(num_cpus=2, include_dashboard=False, address="local", _node_ip_address="127.0.0.1", log_to_driver=False)
    sides = {"local pool, 1 worker": JudgeConfig(workers=1, timeout=args.timeout),
             "ray, 1 actor": JudgeConfig(executor="ray", workers=1, ray_actors=1, ray_batch=args.ray_batch, timeout=args.timeout),
             "local pool, 2 workers": JudgeConfig(workers=2, timeout=args.timeout),
             "ray, 2 actors": JudgeConfig(executor="ray", workers=1, ray_actors=2, ray_batch=args.ray_batch, timeout=args.timeout)}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    verdicts: dict[str, list[str]] = {}
    try:
        for _ in range(args.rounds):
            for name, cfg in sides.items():
                with Judge(cfg) as judge:  # started outside the timing: a cluster's actors stay up for a run
                    judge.run(tasks[:4])
                    elapsed, results = timed(lambda: judge.run(tasks))
                seconds[name].append(elapsed)
                verdicts[name] = [r.verdict for r in results]
    finally:
        ray.shutdown()
    rate = {name: len(tasks) / sorted(values)[len(values) // 2] for name, values in seconds.items()}
    differ = sum(len(set(column)) > 1 for column in zip(*verdicts.values()))
    print(f"{len(tasks)} programs ({sum(p.kind == 'stdin' for p, _ in items)} APPS, the rest MBPP), batches of "
          f"{args.ray_batch}, {args.rounds} alternating rounds, median; programs whose verdicts differ between sides: {differ}")
    for name in sides:
        rounds = ", ".join(f"{value:.2f}" for value in seconds[name])
        print(f"  {name}: {rate[name]:.1f} programs/s (rounds: {rounds} s)")
    for n in (1, 2):
        ray_name = f"ray, {n} actor{'s' if n > 1 else ''}"
        local_name = f"local pool, {n} worker{'s' if n > 1 else ''}"
        print(f"  {ray_name} / {local_name}: {rate[ray_name] / rate[local_name]:.2f}x")
    print(f"  ray, 2 actors / ray, 1 actor: {rate['ray, 2 actors'] / rate['ray, 1 actor']:.2f}x")


def references(args: argparse.Namespace) -> None:
    """Every reference solution on its own problem's hidden tests; failures listed for inspection."""
    sets = [("APPS train subset (all solutions)", SHARED / "apps" / "apps_train_subset.jsonl", None),
            ("MBPP (canonical code, all 974)", SHARED / "mbpp" / "mbpp.jsonl", 1),
            ("HumanEval+ v0.1.10 (canonical, base + plus inputs)", SHARED / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz", 1),
            ("MBPP+ (canonical, base + plus inputs)", SHARED / "mbppplus" / "MbppPlus-767efcc.jsonl", 1)]
    with Judge(JudgeConfig(workers=args.workers, timeout=args.timeout)) as judge:
        for name, path, per_problem in sets:
            problems = load_problems(DataConfig(path=str(path)))
            tasks = [JudgeTask(problem=p, code=code) for p in problems for code in p.solutions[:per_problem]]
            start = time.perf_counter()
            results = judge.run(tasks)
            passed = sum(r.passed for r in results)
            print(f"{name}: {passed}/{len(tasks)} pass ({100 * passed / len(tasks):.1f}%), "
                  f"{time.perf_counter() - start:.0f}s")
            failing_problems: dict[str, list[str]] = {}
            for task, result in zip(tasks, results):
                if not result.passed:
                    failing_problems.setdefault(task.problem.id, []).append(f"{result.verdict}: {result.detail[:90]}")
            print(f"  problems with a failing reference: {len(failing_problems)} of {len(problems)}")
            for problem_id, why in sorted(failing_problems.items()):
                print(f"  - {problem_id}: {len(why)} x; first: {why[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", action="store_true", help="pass rates of reference solutions instead")
    parser.add_argument("--policy", action="store_true", help="the syscall filter's cost: policy on vs off instead")
    parser.add_argument("--ray", action="store_true", help="the judge on Ray (1, 2 actors) against the local pool instead")
    parser.add_argument("--ray-batch", type=int, default=32, help="--ray: programs per Ray task")
    parser.add_argument("--rounds", type=int, default=3, help="--policy, --ray: rounds per side, alternating")
    parser.add_argument("--apps", type=int, default=100, help="APPS problems to take (2 solutions + 1 mutant each)")
    parser.add_argument("--mbpp", type=int, default=200, help="MBPP problems to take (canonical + 1 mutant each)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--include-slow", action="store_true", help="keep programs that exceed 0.5 s CPU on a test")
    parser.add_argument("--timeout", type=float, default=None, help="CPU seconds per test (default: per benchmark)")
    parser.add_argument("--baseline", choices=["program", "both"], default="both",
                        help="fresh python per program only, or also per run (slower to measure)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared data not found at {SHARED}")
    if args.references:
        references(args)
    elif args.policy:
        policy_cost(args)
    elif args.ray:
        ray_scaling(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
