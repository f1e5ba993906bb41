"""Hostile programs: each is contained, gets the right verdict, and leaves the judge unharmed.

All programs run in one batch on one judge (fast); each test then checks its own program's result
and the side effects it tried to cause.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from codeplan.judge import Judge, JudgeConfig, JudgeTask
from codeplan.problems import Problem, TestCase

SECRET = "judge-secret-" + uuid.uuid4().hex
TOKEN = "EXPECTED-" + uuid.uuid4().hex  # the expected output a hunting program would need to find


def stdin_problem(expected: str = "4") -> Problem:
    return Problem(id="double", statement="", kind="stdin",
                   hidden_tests=[TestCase(input="2\n", output=expected), TestCase(input="2\n", output=expected)])


def descendants(root: int) -> set[int]:
    """Every process below `root` in the host's process tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def worker_processes(judge: Judge) -> list[int]:
    """Processes per worker: bubblewrap's two, the worker and its init (a program's process lives
    only while the program is judged)."""
    return [1 + len(descendants(worker.proc.pid)) for worker in judge._workers]


PROGRAMS: dict[str, tuple[str, Problem | None]] = {}


def hostile(name: str, code: str, problem: Problem | None = None) -> None:
    PROGRAMS[name] = (textwrap.dedent(code), problem)


hostile("infinite_loop", "while True:\n    pass\n")
hostile("sleep_forever", "import time\ntime.sleep(10**6)\n")
hostile("ignore_signals", """
    import signal
    for s in range(1, 65):
        try:
            signal.signal(s, signal.SIG_IGN)
        except (OSError, ValueError, RuntimeError):
            pass
    while True:
        pass
""")
hostile("fork_bomb", """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
""")
hostile("setsid_double_fork", """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(10**6)
        os._exit(0)
    print(4)
""")
hostile("thread_bomb", """
    import threading, time
    threads = []
    while True:
        t = threading.Thread(target=time.sleep, args=(100,), daemon=True)
        t.start()
        threads.append(t)
""")
hostile("cheat_cpu_time", """
    import resource, signal, time
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    real = resource.getrusage

    class NoCpu:  # the harness's own CPU reading, faked to say no CPU was used
        def __init__(self, usage):
            self.usage = usage

        def __getattr__(self, name):
            return 0.0 if name in ("ru_utime", "ru_stime") else getattr(self.usage, name)

    resource.getrusage = lambda who: NoCpu(real(who))
    end = time.process_time() + 2.5  # the limit is 1 s; the kernel's hard limit only comes at 3 s
    while time.process_time() < end:
        pass
    print(4)
""")
hostile("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))\n")
hostile("endless_stdout", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
hostile("endless_stderr", "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n")
hostile("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(4)\n")
hostile("kill_process_group", "import os, signal\nos.killpg(0, signal.SIGKILL)\n")
hostile("kill_everything", """
    import os, signal
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # nothing else to kill in its namespace
        pass
    print(4)
""")
hostile("interrupt_init", """
    import os, signal, time
    os.kill(1, signal.SIGINT)  # the interpreter's handler, in the worker's init, would raise KeyboardInterrupt
    time.sleep(0.2)
    print(4)
""")
hostile("inode_bomb", """
    import os
    made = 0
    try:
        while made < 300_000:  # empty directories: no size, but kernel memory each
            os.mkdir(f"/tmp/{made}")
            made += 1
    except OSError:
        pass
    print(4 if made <= 20_000 else made)
""")
hostile("close_stdout", "import os\nos.close(1)\nprint(4)\n")
hostile("exit_before_print", "import os\nos._exit(0)\nprint(4)\n")
hostile("stack_overflow", """
    import sys
    sys.setrecursionlimit(10**8)
    def down(n):
        return down(n + 1) + 1
    down(0)
""")
hostile("segfault", "import ctypes\nctypes.string_at(0)\n")
hostile("inherited_fds", """
    import os
    for fd in range(0, 1024):
        try:
            os.write(fd, b"garbage" * 1000)
        except OSError:
            pass
    print(4)
""")
hostile("read_env", "import os\nprint(os.environ.get('CODEPLAN_TEST_SECRET'))\n", stdin_problem(SECRET))
hostile("right_then_exit", "print(int(input()) * 2)\nexit()\n")
hostile("right_then_sys_exit", "import sys\nprint(int(input()) * 2)\nsys.exit(0)\n")
hostile("hunt_memory", """
    import gc, re, sys
    found = set()
    for obj in gc.get_objects():
        try:
            for item in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else [obj]):
                if isinstance(item, str) and re.fullmatch("EXPECTED-[0-9a-f]{32}", item):
                    found.add(item)
        except Exception:
            pass
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
            if isinstance(value, str) and re.fullmatch("EXPECTED-[0-9a-f]{32}", value):
                found.add(value)
        frame = frame.f_back
    print(found.pop() if found else "nothing")
""", stdin_problem(TOKEN))
hostile("hunt_files_and_proc", """
    import os, re
    found = set()
    pattern = re.compile(rb"EXPECTED-[0-9a-f]{32}")
    def scan(path):
        try:
            with open(path, "rb") as handle:
                found.update(m.decode() for m in pattern.findall(handle.read(1 << 22)))
        except Exception:
            pass
    for pid in range(1, 200):
        for name in ("environ", "cmdline", "maps"):
            scan(f"/proc/{pid}/{name}")
        try:
            with open(f"/proc/{pid}/mem", "rb") as mem:
                found.update(m.decode() for m in pattern.findall(mem.read(1 << 20)))
        except Exception:
            pass
    for top in os.listdir("/"):
        if top in ("usr", "proc", "sys", "dev") or os.path.islink("/" + top):
            continue
        for root, dirs, files in os.walk("/" + top):
            if "site-packages" in root or "/lib/python" in root:
                dirs[:] = []
                continue
            for name in files:
                scan(os.path.join(root, name))
    print(found.pop() if found else "nothing")
""", stdin_problem(TOKEN))


def call_problem() -> Problem:
    return Problem(id="twice", statement="", kind="call", entry_point="f",
                   hidden_tests=[TestCase(input=[1], output=2), TestCase(input=[2], output=4)])


FORGE_FRAME = """
    import os, struct
    def forge(value_json):  # a result frame on the harness's channel, as the harness would write it
        status = b'{"ok": true, "stdout_bytes": 0, "stderr_bytes": 0, "value": ' + value_json + b'}'
        os.write(4, struct.pack(">I", len(status)) + status)
    def f(x):
        return 2 * x
"""
# A returned value nested deeper than the codec ever writes: decoding it overflowed the judge's
# stack, and the whole batch failed with RecursionError.
hostile("forged_deep_value", FORGE_FRAME + """
    forge(b"[" * 700 + b"]" * 700)
    os._exit(0)
""", call_problem())
# A tagged value the codec would never write, whose decoding raised OverflowError in the worker's
# init (which died, and was replaced twice).
hostile("forged_overflowing_value", FORGE_FRAME + """
    forge(b'{"$complex": [{"$int": "' + b"f" * 1000 + b'"}, 0]}')
    os._exit(0)
""", call_problem())
# 12 MB of JSON that would become 4 million lists in the worker's init and again in the judge.
hostile("forged_inflating_value", FORGE_FRAME + """
    forge(b"[" + b"[]," * 4_000_000 + b"[]]")
    os._exit(0)
""", call_problem())

# Not hostile, just wrong: an int Python will not turn into decimal digits (over 4300).
hostile("huge_int_answer", "def f(x):\n    return 10 ** 5000\n", call_problem())
# Where the expected value is a float (HumanEval+/MBPP+ compare with a tolerance), an int past float
# range once raised OverflowError out of `Judge.run`, failing the whole batch.
hostile("int_past_float_range", "def f(x):\n    return 10 ** 400\n",
        Problem(id="half", statement="", kind="call", entry_point="f", outputs_from_solution=True,
                solutions=["def f(x):\n    return x / 2\n"], hidden_tests=[TestCase(input=[3], output=None)]))

# HumanEval+/MBPP+: where the reference solution fails (here on x = 3), the expected value is a
# marker that an object of the same type name and repr compared equal to, so this passed.
hostile("match_failed_reference",
        'def f(x):\n    return type("reference-failed", (), {"__repr__": lambda self: "ZeroDivisionError"})()\n',
        Problem(id="inverse", statement="", kind="call", entry_point="f", outputs_from_solution=True,
                solutions=["def f(x):\n    return 1 // (x - 3)\n"], hidden_tests=[TestCase(input=[3], output=None)]))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    """Start a server and plant files, run every hostile program once, and record what happened."""
    os.environ["CODEPLAN_TEST_SECRET"] = SECRET
    base = tmp_path_factory.mktemp("victim")
    victim = base / "victim.txt"
    victim.write_text("precious")
    dataset = base / "expected.txt"
    dataset.write_text(TOKEN)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    port = server.getsockname()[1]
    hostile("files", f"""
        import os, shutil
        for action in (lambda: open({str(victim)!r}, "w").write("owned"),
                       lambda: os.remove({str(victim)!r}),
                       lambda: shutil.rmtree({str(base)!r}),
                       lambda: open("/usr/codeplan-owned", "w").write("x"),
                       lambda: open("/bin/owned", "w").write("x"),
                       lambda: os.remove({os.path.realpath(os.sys.executable)!r})):
            try:
                action()
            except Exception:
                pass
        print(os.path.exists({str(victim)!r}), os.path.exists({str(dataset)!r}))
    """)
    hostile("network", f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"hello")
            print("connected")
        except OSError as err:
            print("refused", err)
    """)
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, True)
    names = list(PROGRAMS)
    tasks = [JudgeTask(problem=problem or stdin_problem(), code=code) for code, problem in PROGRAMS.values()]
    # Wall time 4x the CPU limit: the fork and thread bombs on the other worker slow everything
    # down, and a memory bomb that merely waited for a core must still end as memory_limit.
    cfg = JudgeConfig(workers=2, timeout=1.0, wall_factor=4.0, memory_mb=512)
    with Judge(cfg) as judge:
        before = worker_processes(judge)
        results = judge.run(tasks)
        after = worker_processes(judge)
        followup = judge.run([JudgeTask(problem=stdin_problem(), code="print(int(input()) * 2)")])[0]
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    try:
        leaked = os.read(read_fd, 100)
    except BlockingIOError:
        leaked = b""
    os.close(read_fd)
    try:
        connection, _ = server.accept()
        connection.close()
        connected = True
    except BlockingIOError:
        connected = False
    server.close()
    del os.environ["CODEPLAN_TEST_SECRET"]
    return {"results": dict(zip(names, results)), "before": before, "after": after, "followup": followup,
            "victim": victim.read_text() if victim.exists() else None, "connected": connected, "leaked": leaked}


@pytest.mark.parametrize("name", ["infinite_loop", "sleep_forever", "ignore_signals", "cheat_cpu_time"])
def test_runaway_programs_time_out(outcome, name):
    assert outcome["results"][name].verdict == "timeout", outcome["results"][name]


def test_faking_its_cpu_time_does_not_buy_a_test_more_time(outcome):
    # Every test, not only the one where the kernel's total for the process runs out.
    result = outcome["results"]["cheat_cpu_time"]
    assert result.test_verdicts == ["timeout", "timeout"], result


def test_memory_bomb_hits_memory_limit(outcome):
    assert outcome["results"]["memory_bomb"].verdict == "memory_limit", outcome["results"]["memory_bomb"]


@pytest.mark.parametrize("name", ["endless_stdout", "endless_stderr"])
def test_endless_output_hits_output_limit(outcome, name):
    assert outcome["results"][name].verdict == "output_limit", outcome["results"][name]


@pytest.mark.parametrize("name", ["fork_bomb", "thread_bomb", "kill_process_group", "stack_overflow", "segfault"])
def test_contained_failures_do_not_pass(outcome, name):
    result = outcome["results"][name]
    assert result.verdict in {"runtime_error", "timeout", "memory_limit"}, result


def test_nothing_the_programs_started_survives(outcome):
    # As many processes per worker before and after: fork bombs, setsid + double fork, sleeping children all gone.
    assert all(count <= 4 for count in outcome["before"] + outcome["after"]), (outcome["before"], outcome["after"])
    assert outcome["results"]["setsid_double_fork"].verdict == "pass"


def test_writing_to_inherited_fds_reaches_nothing(outcome):
    # The only inherited descriptors lead to the program's own result channel: garbage there is the
    # program's runtime error; nothing reaches the judge's descriptors.
    assert outcome["results"]["inherited_fds"].verdict == "runtime_error", outcome["results"]["inherited_fds"]
    assert outcome["leaked"] == b""
    assert outcome["followup"].verdict == "pass"


def test_scratch_holds_a_bounded_number_of_files(outcome):
    # The scratch's inodes are limited as its size is: the program runs out of them, not the machine.
    assert outcome["results"]["inode_bomb"].test_verdicts == ["pass", "pass"], outcome["results"]["inode_bomb"]


@pytest.mark.parametrize("name", ["kill_parent", "kill_everything", "interrupt_init"])
def test_attacks_on_the_judge_change_nothing(outcome, name):
    # The program prints the right answer after its attack: the judge is unharmed and grades it.
    assert outcome["results"][name].verdict == "pass", outcome["results"][name]
    assert outcome["leaked"] == b""


@pytest.mark.parametrize("name", ["forged_deep_value", "forged_inflating_value", "forged_overflowing_value"])
def test_forged_result_frames_are_the_programs_runtime_error(outcome, name):
    # The program shares its process with the harness, so it can write result frames itself: one
    # the codec would never write is a protocol error, not a crashed judge or gigabytes in it.
    assert outcome["results"][name].test_verdicts[0] == "runtime_error", outcome["results"][name]
    assert outcome["followup"].verdict == "pass"


def test_a_wrong_huge_int_is_a_wrong_answer_not_a_broken_worker(outcome):
    result = outcome["results"]["huge_int_answer"]
    assert result.test_verdicts == ["wrong_answer", "wrong_answer"], result
    result = outcome["results"]["int_past_float_range"]
    assert result.test_verdicts == ["wrong_answer"], result


def test_no_program_matches_a_failed_reference(outcome):
    result = outcome["results"]["match_failed_reference"]
    assert result.verdict == "wrong_answer", result


def test_judge_keeps_working_after_the_batch(outcome):
    assert outcome["followup"].verdict == "pass"


@pytest.mark.parametrize("name", ["close_stdout", "exit_before_print"])
def test_lost_output_is_a_wrong_answer(outcome, name):
    assert outcome["results"][name].verdict == "wrong_answer", outcome["results"][name]


@pytest.mark.parametrize("name", ["right_then_exit", "right_then_sys_exit"])
def test_exit_after_the_answer_passes(outcome, name):
    assert outcome["results"][name].verdict == "pass", outcome["results"][name]


def test_files_outside_scratch_are_untouched_and_invisible(outcome):
    assert outcome["victim"] == "precious"
    assert outcome["results"]["files"].verdict == "wrong_answer"
    assert not Path("/usr/codeplan-owned").exists()


def test_no_network(outcome):
    assert outcome["connected"] is False
    assert outcome["results"]["network"].verdict == "wrong_answer"


@pytest.mark.parametrize("name", ["read_env", "hunt_memory", "hunt_files_and_proc"])
def test_secrets_and_expected_outputs_are_out_of_reach(outcome, name):
    # Each of these would pass if it found what it looks for.
    assert outcome["results"][name].verdict == "wrong_answer", outcome["results"][name]


def test_scratch_left_behind_never_reaches_the_next_program():
    """A program that litters, locks or tags its /tmp: the next program on the same worker gets an
    empty, writable /tmp without the previous program's files or attributes."""
    litter = textwrap.dedent("""
        import os
        open("/tmp/left.txt", "w").write("from the last program")
        os.makedirs("/tmp/locked/deep")
        open("/tmp/locked/deep/f", "w").write("x")
        os.chmod("/tmp/locked", 0)
        try:
            os.setxattr("/tmp", "user.note", b"hello")
        except OSError:
            pass
        os.chmod("/tmp", 0o500)
        print(4)
    """)
    tag_only = textwrap.dedent("""
        import os
        try:
            os.setxattr("/tmp", "user.note", b"hello")
        except OSError:
            pass
        print(4)
    """)
    check = textwrap.dedent("""
        import os
        st = os.stat("/tmp")
        open("/tmp/mine.txt", "w").write("ok")
        os.remove("/tmp/mine.txt")
        print(os.listdir("/tmp"), oct(st.st_mode & 0o7777), os.listxattr("/tmp"))
    """)
    expected = "['input.txt'] 0o1777 []\n"  # only the test's input (APPS compatibility, docs/judge.md)
    problem = Problem(id="scratch", statement="", kind="stdin", hidden_tests=[TestCase(input="", output=expected)])
    with Judge(JudgeConfig(workers=1, timeout=2.0)) as judge:
        results = judge.run([JudgeTask(problem=problem, code=code)
                             for code in (check, litter, check, tag_only, check, check)])
    assert [r.verdict for r in results] == ["pass", "wrong_answer", "pass", "wrong_answer", "pass", "pass"], results


def test_closing_the_harness_files_loses_nothing_already_printed():
    """A program that prints its answer and then closes the harness's copies of its output and
    input files (fds 5-7; closing the result channel, fd 4, is a runtime error) is still judged on
    what it printed."""
    code = "print(int(input()) * 2)\nimport sys\nsys.stdout.flush()\nimport os\nos.closerange(5, 100)\n"
    problem = Problem(id="one", statement="", kind="stdin", hidden_tests=[TestCase(input="2\n", output="4\n")])
    with Judge(JudgeConfig(workers=1, timeout=2.0)) as judge:
        result = judge.run([JudgeTask(problem=problem, code=code)])[0]
    assert result.verdict == "pass", result


def test_system_v_ipc_cannot_hold_memory_past_the_limit_or_the_program():
    """Shared memory segments are memory no process limit counts (attach, fill, detach, repeat), and
    they outlive their processes: one left in the worker's IPC namespace held its memory after the
    program (and `Judge.run`) ended and reached the next program."""
    code = textwrap.dedent("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        before = libc.shmget(0x5EED, 0, 0)
        made = 0
        for key in range(0x5EED, 0x5EED + 4):
            segment = libc.shmget(key, 256 << 20, 0o1600)
            address = libc.shmat(segment, None, 0) if segment >= 0 else None
            if address in (None, ctypes.c_void_p(-1).value):
                break
            ctypes.memset(address, 1, 256 << 20)
            libc.shmdt(ctypes.c_void_p(address))
            made += 256
        print(before, "escaped" if made > 512 else "contained")
    """)
    problem = Problem(id="ipc", statement="", kind="stdin", hidden_tests=[TestCase(input="", output="-1 contained")])
    with Judge(JudgeConfig(workers=1, timeout=2.0, memory_mb=512)) as judge:
        results = judge.run([JudgeTask(problem=problem, code=code) for _ in range(2)])
    assert [r.verdict for r in results] == ["pass"] * 2, results


def test_memory_files_cannot_hold_memory_past_the_limit():
    """Memory files count against the file-size limit (16 MB each), not the address space: 48 of
    them once held 768 MB under a 512 MB limit. The program may not create them."""
    code = textwrap.dedent("""
        import os
        files, made = [], 0
        try:
            for _ in range(48):
                fd = os.memfd_create("hoard")
                os.ftruncate(fd, 0)
                for _ in range(16):
                    os.write(fd, b"x" * (1 << 20))
                files.append(fd)
                made += 16
        except OSError:
            pass
        print("escaped" if made > 512 else "contained")
    """)
    problem = Problem(id="memfd", statement="", kind="stdin", hidden_tests=[TestCase(input="", output="contained")])
    with Judge(JudgeConfig(workers=1, timeout=2.0, memory_mb=512)) as judge:
        result = judge.run([JudgeTask(problem=problem, code=code)])[0]
    assert result.verdict == "pass", result


def test_a_program_that_stops_taking_its_tests_gets_its_wall_limit_not_a_stalled_worker():
    """Early exit: the judge passes each next test on through the worker. A program that keeps its
    request channel open but stops reading it (here: a dup and a blocking pipe in its place) once
    stalled the worker's init on a test input larger than a pipe holds, until the judge gave up on
    the worker (its wall limit + 30 s, twice)."""
    code = "import os\nkeep = os.dup(3)\nread, write = os.pipe()\nos.dup2(read, 3)\nprint(4)\n"
    big = "2\n" + "0 " * 200_000
    problem = Problem(id="big", statement="", kind="stdin",
                      hidden_tests=[TestCase(input="2\n", output="4"), TestCase(input=big, output="4")])
    with Judge(JudgeConfig(workers=1, timeout=0.5, wall_factor=2.0)) as judge:
        start = time.monotonic()
        result = judge.run([JudgeTask(problem=problem, code=code, early_exit=True)])[0]
        elapsed = time.monotonic() - start
        followup = judge.run([JudgeTask(problem=problem, code="print(int(input()) * 2)", early_exit=True)])[0]
    assert result.test_verdicts == ["pass", "timeout"], result
    assert elapsed < 15, elapsed
    assert followup.verdict == "pass", followup


def test_a_key_in_the_users_keyring_does_not_reach_the_next_program():
    code = textwrap.dedent("""
        import ctypes, platform
        libc = ctypes.CDLL(None, use_errno=True)
        add_key, keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
        user_keyring, search = -4, 10
        found = libc.syscall(keyctl, search, user_keyring, b"user", b"codeplan-note", 0)
        libc.syscall(add_key, b"user", b"codeplan-note", b"hello", 5, user_keyring)
        print("found" if found > 0 else "none")
    """)
    problem = Problem(id="keys", statement="", kind="stdin", hidden_tests=[TestCase(input="", output="none")])
    with Judge(JudgeConfig(workers=1, timeout=2.0)) as judge:
        results = judge.run([JudgeTask(problem=problem, code=code) for _ in range(2)])
    assert [r.verdict for r in results] == ["pass"] * 2, results


HUMANEVAL_CHEATS = {
    # Equal to every expected value: `assert candidate(x) == True` and `== False` both hold.
    "always_equal": """
        class Yes:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def has_close_elements(numbers, threshold):
            return Yes()
    """,
    # The harness looks its exec/eval up in the builtins the program shares: the check never runs,
    # and an evaluated expression comes back always-equal.
    "patched_builtins": """
        import builtins
        class Yes:
            def __eq__(self, other):
                return True
        builtins.exec = lambda *args, **kwargs: None
        builtins.eval = lambda *args, **kwargs: Yes()
        def has_close_elements(numbers, threshold):
            return True
    """,
}


def test_split_humaneval_assertions_cannot_be_passed_from_inside_the_program():
    """HumanEval's check() run whole carries its expected values into the program's process, where
    these programs make it pass. Loaded split into `assert f(x) == LITERAL` tests (evaluated in the
    sandbox, compared in the judge), the same programs fail every test."""
    import gzip
    import json

    from codeplan.config import DataConfig
    from codeplan.data import load_problems
    from codeplan.data.humaneval import packaged_humaneval_path

    (split,) = load_problems(DataConfig(path="humaneval", limit=1))
    with gzip.open(packaged_humaneval_path(), "rt") as file:
        record = json.loads(file.readline())
    assert split.id == record["task_id"] == "HumanEval/0" and len(split.hidden_tests) == 7
    whole = split.model_copy(update={"test_setup": "", "hidden_tests": [
        TestCase(input=f"{record['test']}\n\ncheck({record['entry_point']})\n")]})
    codes = [split.solutions[0]] + [textwrap.dedent(code) for code in HUMANEVAL_CHEATS.values()]
    with Judge(JudgeConfig(workers=1, timeout=2.0)) as judge:
        on_whole = judge.run([JudgeTask(problem=whole, code=code) for code in codes])
        on_split = judge.run([JudgeTask(problem=split, code=code) for code in codes])
    assert [r.verdict for r in on_whole] == ["pass"] * 3, on_whole  # the known limit of whole check() tests
    assert on_split[0].verdict == "pass" and on_split[0].tests_passed == 7
    for name, result in zip(HUMANEVAL_CHEATS, on_split[1:]):
        assert result.verdict == "wrong_answer" and result.tests_passed == 0, (name, result)


def test_truth_assertions_do_not_tell_the_program_which_truth_value_is_wanted():
    """`assert f(x)` and `assert not f(x)` both reach the program as `not not (f(x))`: a program
    that reads its caller's code to see which one it is in passes every such test when they run
    whole, and only half of them split."""
    from codeplan.judge.asserts import split_assert

    tests = ["assert below([1, 2, 4, 10], 100)", "assert not below([1, 20, 4, 10], 5)",
             "assert below([1, 20, 4, 10], 21)", "assert not below([1, 8, 4, 10], 10)"]
    cheat = textwrap.dedent("""
        import dis, sys
        def below(numbers, threshold):
            # `assert not below(...)` compiles to a jump taken when the result is false.
            caller = sys._getframe(1).f_code
            return not any(ins.opname.endswith("IF_FALSE") for ins in dis.get_instructions(caller))
    """)
    honest = "def below(numbers, threshold):\n    return all(n < threshold for n in numbers)\n"
    problem = Problem(id="below", statement="", kind="assert", entry_point="below",
                      hidden_tests=[TestCase(input=test) for test in tests])
    assert [split_assert(test)[1] for test in tests] == [True, False, True, False]
    with Judge(JudgeConfig(workers=1, timeout=2.0, hide_assert_expected=False)) as whole:
        assert whole.run([JudgeTask(problem=problem, code=cheat)])[0].verdict == "pass"  # the cheat works on whole asserts
    with Judge(JudgeConfig(workers=1, timeout=2.0)) as judge:
        honest_result, cheat_result = judge.run([JudgeTask(problem=problem, code=code) for code in (honest, cheat)])
    assert honest_result.verdict == "pass" and honest_result.tests_passed == 4
    assert cheat_result.verdict == "wrong_answer" and cheat_result.tests_passed == 2
