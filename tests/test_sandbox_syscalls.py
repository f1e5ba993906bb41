"""The program's system-call policy: each refused family fails to do its thing, and is refused by the
filter itself; ordinary programs (threads, child processes, the standard library, numpy) run as before.

Two readings of each hostile program:
- under the real policy, every call it makes fails with EPERM (clone3: ENOSYS). Without the policy
  (`syscall_policy="off"`) the namespace, mount, ptrace, perf, io_uring and keyring programs
  succeed here, so these fail;
- under the same policy built with an errno nothing else returns (ENOTRECOVERABLE), every call
  answers that errno: the filter refused it before the kernel looked at it. This also catches
  calls the kernel would refuse anyway in this sandbox (module loading, bpf where unprivileged bpf
  is off), for which EPERM alone cannot tell the filter from the kernel.
Both run for the allowlist and, on the same machine, the denylist used where no allowlist exists.
"""

from __future__ import annotations

import errno
import functools
import platform
import textwrap

import pytest

from codeplan.judge import Judge, JudgeConfig, JudgeTask, policy
from codeplan.judge import pool as judge_pool
from codeplan.problems import Problem, TestCase

pytestmark = pytest.mark.skipif(platform.machine() not in policy.ALLOWLIST_MACHINES,
                                reason="the hostile programs name x86_64/aarch64 system call numbers")
MARKER = errno.ENOTRECOVERABLE

# Each program prints `call=RESULT` for every call it makes (RESULT: "ok" or the errno's name).
PRELUDE = '''
import ctypes, errno, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"x86_64": dict(clone=56, clone3=435, unshare=272, setns=308, mount=165, umount2=166, pivot_root=155,
                     fsopen=430, ptrace=101, process_vm_readv=310, process_vm_writev=311, bpf=321,
                     perf_event_open=298, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
                     add_key=248, request_key=249, keyctl=250, init_module=175, finit_module=313,
                     delete_module=176),
      "aarch64": dict(clone=220, clone3=435, unshare=97, setns=268, mount=40, umount2=39, pivot_root=41,
                      fsopen=430, ptrace=117, process_vm_readv=270, process_vm_writev=271, bpf=280,
                      perf_event_open=241, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
                      add_key=217, request_key=218, keyctl=219, init_module=105, finit_module=273,
                      delete_module=106)}[platform.machine()]
results = []

def call(name, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(NR[name]), *[a if isinstance(a, (bytes, ctypes._SimpleCData, ctypes.Array))
                                                  else ctypes.c_long(a) for a in args])
    if rc == 0 and name == "clone":  # a child made by a clone that went through
        os._exit(0)
    results.append(f"{name}=" + ("ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")))
    return rc
'''
FAMILIES: dict[str, tuple[str, list[str]]] = {
    # A user namespace is the way in to all the others (its creator holds every capability there).
    "namespaces": ('''
        CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17
        call("unshare", CLONE_NEWUSER | CLONE_NEWNS)
        call("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
        call("setns", 0, CLONE_NEWUSER)
        call("clone3", 0, 0)
    ''', ["unshare", "clone", "setns", "clone3"]),
    # In a user namespace of its own a program may mount; here it may not even try.
    "mount": ('''
        call("unshare", 0x10000000 | 0x20000)
        call("mount", b"none", b"/tmp", b"tmpfs", 0, 0)
        call("umount2", b"/tmp", 2)
        call("pivot_root", b"/tmp", b"/tmp")
        call("fsopen", b"tmpfs", 0)
    ''', ["unshare", "mount", "umount2", "pivot_root", "fsopen"]),
    "ptrace and cross-process memory": ('''
        call("ptrace", 0, 0, 0, 0)  # PTRACE_TRACEME
        source, target = ctypes.create_string_buffer(b"secret", 8), ctypes.create_string_buffer(8)
        local = (ctypes.c_void_p * 2)(ctypes.addressof(target), 8)
        remote = (ctypes.c_void_p * 2)(ctypes.addressof(source), 8)
        call("process_vm_readv", os.getpid(), local, 1, remote, 1, 0)
        call("process_vm_writev", os.getpid(), remote, 1, local, 1, 0)
    ''', ["ptrace", "process_vm_readv", "process_vm_writev"]),
    "bpf and perf": ('''
        map_attr = (ctypes.c_uint32 * 32)(2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4 B, value 4 B, 1 entry
        call("bpf", 0, map_attr, 128)  # BPF_MAP_CREATE
        perf_attr = (ctypes.c_uint8 * 128)()
        ctypes.memmove(perf_attr, (ctypes.c_uint32 * 2)(1, 128), 8)  # PERF_TYPE_SOFTWARE, size; config 0: CPU clock
        ctypes.memmove(ctypes.addressof(perf_attr) + 40, (ctypes.c_uint64 * 1)(0b1100000), 8)  # exclude kernel, hv
        call("perf_event_open", perf_attr, 0, -1, -1, 0)
    ''', ["bpf", "perf_event_open"]),
    "io_uring": ('''
        params = (ctypes.c_uint8 * 120)()
        call("io_uring_setup", 4, params)
        call("io_uring_enter", 0, 0, 0, 0, 0, 0)
        call("io_uring_register", 0, 0, 0, 0)
    ''', ["io_uring_setup", "io_uring_enter", "io_uring_register"]),
    "kernel keyrings": ('''
        call("add_key", b"user", b"codeplan-note", b"hello", 5, -2)  # the process keyring
        call("keyctl", 0, -2, 0)  # KEYCTL_GET_KEYRING_ID
        call("request_key", b"user", b"codeplan-note", 0, 0)
    ''', ["add_key", "keyctl", "request_key"]),
    "module loading": ('''
        image = ctypes.create_string_buffer(b"\\x7fELF", 64)
        call("init_module", image, 64, b"")
        call("finit_module", os.open("/dev/null", os.O_RDONLY), b"", 0)
        call("delete_module", b"codeplan", 0)
    ''', ["init_module", "finit_module", "delete_module"]),
}


def expected(calls: list[str], refusal: int) -> str:
    return " ".join(f"{name}={'ENOSYS' if name == 'clone3' else errno.errorcode[refusal]}" for name in calls)


def hostile_program(family: str) -> str:
    return textwrap.dedent(PRELUDE) + textwrap.dedent(FAMILIES[family][0]) + 'print(" ".join(results))\n'


def run_families(monkeypatch, syscall_policy: str, refusal: int) -> dict[str, object]:
    if refusal != errno.EPERM:
        monkeypatch.setattr(judge_pool.policy, "build", functools.partial(policy.build, refusal=refusal))
    tasks = [JudgeTask(problem=Problem(id=family.replace(" ", "-"), statement="", kind="stdin",
                                       hidden_tests=[TestCase(input="", output=expected(FAMILIES[family][1], refusal))]),
                       code=hostile_program(family)) for family in FAMILIES]
    with Judge(JudgeConfig(workers=1, timeout=2.0, syscall_policy=syscall_policy)) as judge:
        return dict(zip(FAMILIES, judge.run(tasks)))


@pytest.fixture(scope="module", params=["allowlist", "denylist"])
def refused_with_eperm(request):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return request.param, run_families(monkeypatch, request.param, errno.EPERM)


@pytest.fixture(scope="module", params=["allowlist", "denylist"])
def refused_by_the_filter(request):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return request.param, run_families(monkeypatch, request.param, MARKER)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_refused_family_fails_to_do_its_thing(refused_with_eperm, family):
    _, results = refused_with_eperm
    assert results[family].verdict == "pass", results[family]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_refusals_come_from_the_filter_not_the_kernel(refused_by_the_filter, family):
    _, results = refused_by_the_filter
    assert results[family].verdict == "pass", results[family]


# Ordinary programs, with what they print (the same without the filter).
ORDINARY: dict[str, tuple[str, str]] = {
    "threads": ('''
        import threading, queue, concurrent.futures as cf
        q = queue.Queue()
        threads = [threading.Thread(target=lambda i=i: q.put(i * i)) for i in range(4)]
        [t.start() for t in threads]; [t.join() for t in threads]
        with cf.ThreadPoolExecutor(3) as pool:
            print(sorted(q.get() for _ in range(4)), list(pool.map(lambda x: x + 1, range(3))))
    ''', "[0, 1, 4, 9] [1, 2, 3]"),
    # The usual competitive-programming way to recurse deeply: a big thread stack, a raised limit.
    "deep recursion": ('''
        import sys, threading, resource
        sys.setrecursionlimit(10 ** 6)
        threading.stack_size(64 * 1024 * 1024)
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))
        def down(n):
            return 0 if n == 0 else down(n - 1) + 1
        out = []
        t = threading.Thread(target=lambda: out.append(down(100000)))
        t.start(); t.join()
        print(out[0])
    ''', "100000"),
    "child processes": ('''
        import os, subprocess, sys
        child = subprocess.run([sys.executable, "-c", "import sys; print(sum(map(int, sys.stdin.read().split())))"],
                               input="1 2 3", capture_output=True, text=True).stdout.strip()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, b"kid")
            os._exit(0)
        os.waitpid(pid, 0)
        print(child, os.read(read, 3).decode(), subprocess.check_output(["echo", "hi"], text=True).strip())
    ''', "6 kid hi"),
    "standard library": ('''
        import math, heapq, itertools, re, json, decimal, fractions, statistics, hashlib, os, random, time, tempfile, shutil
        time.sleep(0.01)
        scratch = tempfile.mkdtemp()
        with open(os.path.join(scratch, "a"), "w") as handle:
            handle.write("x")
        shutil.copy2(os.path.join(scratch, "a"), os.path.join(scratch, "b"))
        print(math.comb(10, 3), heapq.nsmallest(2, [5, 1, 3]), len(list(itertools.permutations(range(4)))),
              re.findall(r"[0-9]+", "a1b22"), json.dumps({"a": [1]}), decimal.Decimal(1) / 8, fractions.Fraction(3, 9),
              statistics.median([1, 5, 3]), hashlib.sha256(b"x").hexdigest()[:6], len(os.urandom(4)),
              sorted(os.listdir(scratch)), time.process_time() >= 0, random.Random(1).randint(1, 9))
    ''', "120 [1, 3] 24 ['1', '22'] {\"a\": [1]} 0.125 1/3 3 2d7116 4 ['a', 'b'] True 3"),
    "events and signals": ('''
        import asyncio, signal, socket, selectors, time
        async def later():
            await asyncio.sleep(0.01)
            return 5
        left, right = socket.socketpair()
        left.sendall(b"ab")
        hits = []
        signal.signal(signal.SIGALRM, lambda *args: hits.append("alarm"))
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.1)
        print(asyncio.run(later()), right.recv(2).decode(), hits)
    ''', "5 ab ['alarm']"),
    "numpy": ('''
        import numpy as np
        a = np.arange(10 ** 6, dtype=np.int64).reshape(1000, 1000)
        print(int(a.sum()), round(float(np.linalg.det(np.eye(3) * 2)), 6))
    ''', "499999500000 8.0"),
}


def test_ordinary_programs_run_under_the_allowlist():
    tasks = [JudgeTask(problem=Problem(id=name.replace(" ", "-"), statement="", kind="stdin",
                                       hidden_tests=[TestCase(input="", output=output)]), code=textwrap.dedent(code))
             for name, (code, output) in ORDINARY.items()]
    with Judge(JudgeConfig(workers=1, timeout=5.0, syscall_policy="allowlist")) as judge:
        results = judge.run(tasks)
    assert [r.verdict for r in results] == ["pass"] * len(tasks), \
        [(name, r.verdict, r.detail) for name, r in zip(ORDINARY, results) if not r.passed]


def test_the_policy_is_on_by_default_and_refuses_namespaces():
    """The default judge loads the allowlist here; its workers report that the filter refused a
    user namespace before they accept programs."""
    judge = Judge(JudgeConfig(workers=1))
    with judge:
        assert policy.resolve(judge.cfg.syscall_policy) == "allowlist"
        assert judge._filter == policy.build("allowlist")
        result = judge.run([JudgeTask(problem=Problem(id="ns", statement="", kind="stdin",
                                                      hidden_tests=[TestCase(input="", output="unshare=EPERM")]),
                                      code=textwrap.dedent(PRELUDE) + 'call("unshare", 0x10000000)\nprint(*results)\n')])[0]
    assert result.verdict == "pass", result


def test_an_unknown_or_unverified_policy_is_refused():
    from codeplan.errors import SetupError

    with pytest.raises(SetupError, match="unknown syscall_policy"):
        policy.resolve("strict")
    with pytest.raises(SetupError, match="verified on x86_64 and aarch64 only"):
        policy.resolve("allowlist", machine="riscv64")
    assert policy.resolve("auto", machine="riscv64") == "denylist"


def test_the_allowlist_and_the_refused_families_do_not_overlap():
    assert not set(policy.allowed_calls()) & set(policy.refused_calls())


def test_a_missing_libseccomp_binding_is_refused_not_skipped(monkeypatch):
    """No pyseccomp (or no libseccomp under it): the judge refuses to start, saying what to install."""
    import sys

    from codeplan.errors import SetupError

    policy.build.cache_clear()
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # `import pyseccomp` raises ImportError
    try:
        with pytest.raises(SetupError, match="pyseccomp"):
            Judge(JudgeConfig(workers=1)).start()
    finally:
        policy.build.cache_clear()


def test_docs_list_every_call_of_both_policies():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "judge.md").read_text(encoding="utf-8")
    missing = [name for name in policy.allowed_calls() + policy.refused_calls() if f"`{name}`" not in text]
    assert not missing, missing


@pytest.mark.parametrize("program, why", [
    (bytes([6, 0, 0, 0, 0, 0, 0xFF, 0x7F]), "a user namespace could still be created"),  # one `ret ALLOW`
    (bytes([0xFF, 0xFF, 0, 0, 0, 0, 0, 0]), "the kernel refused to load the filter"),  # not an instruction
])
def test_a_filter_that_does_not_take_effect_stops_the_judge(monkeypatch, program, why):
    """Each worker checks the filter it was sent before taking programs; one that loads but lets a
    namespace through, or does not load, is a SetupError, never a judge running without it."""
    from codeplan.errors import SetupError

    monkeypatch.setattr(judge_pool.policy, "build", lambda name: program)
    with pytest.raises(SetupError, match=why):
        Judge(JudgeConfig(workers=1)).start()


def test_a_runtime_below_tmp_is_shown_outside_the_programs_scratch(monkeypatch):
    """A virtualenv in a checkout under /tmp (a CI clone, say) would vanish under the programs'
    fresh /tmp: it is mounted elsewhere, and sys.path follows it."""
    from codeplan.judge import sandbox

    monkeypatch.setattr(sandbox, "find_bwrap", lambda: "bwrap")
    monkeypatch.setattr(sandbox, "runtime_paths", lambda python, site: (["/opt/py", "/tmp/ci/.venv/lib"],
                                                                        ["/tmp/ci/.venv/lib/site-packages"]))
    cmd, paths = sandbox.bwrap_command("/opt/py/bin/python", True)
    binds = [tuple(cmd[i + 1:i + 3]) for i, arg in enumerate(cmd) if arg == "--ro-bind"]
    assert ("/opt/py", "/opt/py") in binds and ("/tmp/ci/.venv/lib", "/run/codeplan-runtime/tmp/ci/.venv/lib") in binds
    assert paths == ["/run/codeplan-runtime/tmp/ci/.venv/lib/site-packages"]
