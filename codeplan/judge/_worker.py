"""The judge's worker: runs inside the sandbox and executes untrusted programs. Standard library only.

This file is sent as source text to a fresh interpreter inside bubblewrap (`python -I -c SOURCE`),
so it must not import anything from codeplan; the judge also imports it for the value codec.

Processes, from the outside in:
  W  the worker, started by the judge inside bubblewrap; it never receives expected outputs, only
     program code and test inputs. It enters a new user + PID + mount namespace and forks
  I  PID 1 of that namespace, which serves the judge one program at a time: it compiles the code,
     gives it a private, empty /tmp (a fresh tmpfs unless the last program left it untouched),
     and forks
  P  the program's process (capabilities dropped, resource limits set), which inherits the
     compiled code and runs the tests I passes on, one after another, each with fresh
     stdin/stdout/stderr; a test that kills P (a signal, a CPU or wall-time limit, os._exit) is
     reported by I, which forks a new P for the next.
At the end of a program I kills every other process of the namespace (kill -1 from a namespace's
init reaches exactly the namespace: daemons, double forks and setsid escapees included); if I
ever exits, the kernel kills everything in the namespace. Without the sandbox (unsafe mode) there
are no namespaces: P starts its own session and I kills that process group, which a
double-forking program can escape.

Protocol: 4-byte big-endian length + UTF-8 JSON, on the worker's stdin (requests) and stdout
(replies). Judge -> I: `program` (code, limits, and the tests to run at once), then `test`s one
by one (early exit), then `end`. I -> judge: the compilation's outcome, one reply per test, and
`ended` once every process of the program is gone. Test values travel in the tagged JSON form of `encode_value`, never pickle, so a
program cannot make the judge run code by returning a crafted object.
"""

from __future__ import annotations

import gc
import json
import math
import os
import select
import signal
import struct
import sys
import time

MAX_MESSAGE = 1 << 30


# ---------------------------------------------------------------- value codec (shared with the judge)
class Opaque:
    """A value the codec cannot carry (a custom object): equal only to an identical Opaque."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.type_name, self.text) == (other.type_name, other.text)

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text[:80]}>"


BIG_INT = 10 ** 1000


class TooLarge(Exception):
    pass


def encode_value(value, budget: list | None = None, depth: int = 0):
    """Python value -> JSON-able tree. Tuples, sets, dicts with any keys, bytes are tagged."""
    if budget is None:
        budget = [2_000_000]
    budget[0] -= 1
    if budget[0] < 0 or depth > 200:
        raise TooLarge("value too large or too deeply nested to return")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -BIG_INT < value < BIG_INT:
            return int(value)
        return {"$int": hex(value)}  # decimal conversion of huge ints is limited (and slow) in Python 3.11+
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {"$float": repr(float(value))}
    if isinstance(value, list):
        return [encode_value(item, budget, depth + 1) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(item, budget, depth + 1) for item in value]}
    if isinstance(value, frozenset):
        return {"$frozenset": [encode_value(item, budget, depth + 1) for item in value]}
    if isinstance(value, set):
        return {"$set": [encode_value(item, budget, depth + 1) for item in value]}
    if isinstance(value, dict):
        return {"$dict": [[encode_value(k, budget, depth + 1), encode_value(v, budget, depth + 1)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, complex):
        return {"$complex": [encode_value(value.real, budget), encode_value(value.imag, budget)]}
    if isinstance(value, Opaque):  # as it came (I re-encodes the values P reports)
        return {"$opaque": [value.type_name, value.text]}
    module = type(value).__module__ or ""
    if module.startswith("numpy") and hasattr(value, "tolist"):
        return encode_value(value.tolist(), budget, depth + 1)
    try:
        text = repr(value)[:10_000]
    except BaseException:  # a hostile __repr__
        text = "?"
    return {"$opaque": [type(value).__name__, text]}


def decode_value(tree):
    """Inverse of `encode_value`. Builds only plain data (and Opaque)."""
    if isinstance(tree, list):
        return [decode_value(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) == 1:
        (tag, body), = tree.items()
        if tag == "$tuple":
            return tuple(decode_value(item) for item in body)
        if tag == "$set":
            return {_hashable(decode_value(item)) for item in body}
        if tag == "$frozenset":
            return frozenset(_hashable(decode_value(item)) for item in body)
        if tag == "$dict":
            return {_hashable(decode_value(k)): decode_value(v) for k, v in body}
        if tag == "$bytes":
            return bytes.fromhex(body)
        if tag == "$int":
            return int(body, 16)
        if tag == "$float":
            return float(body)
        if tag == "$complex":
            return complex(decode_value(body[0]), decode_value(body[1]))
        if tag == "$opaque":
            return Opaque(str(body[0]), str(body[1]))
    # A plain JSON object (from data, not from encode_value): keys are strings.
    return {key: decode_value(value) for key, value in tree.items()}


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, _hashable(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set):
        return frozenset(value)
    return value


# ---------------------------------------------------------------- framing
def read_exact(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int):
    (size,) = struct.unpack(">I", read_exact(fd, 4))
    if size > MAX_MESSAGE:
        raise ValueError("message too large")
    return json.loads(read_exact(fd, size))


def encode_message(obj, *raw: bytes) -> bytes:
    data = json.dumps(obj).encode("utf-8")
    return b"".join([struct.pack(">I", len(data)), data, *raw])


def send(fd: int, obj, *raw: bytes) -> None:
    """One message; `raw` byte strings follow it as they are (their sizes are in `obj`)."""
    view = memoryview(encode_message(obj, *raw))
    while view:
        view = view[os.write(fd, view):]


# ---------------------------------------------------------------- kernel interfaces (ctypes, Linux)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWIPC = 0x00020000, 0x10000000, 0x20000000, 0x08000000
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 4, 38, 1
_libc = None


def libc():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_namespaces() -> None:
    """New user (to hold the capabilities the next steps need), PID and mount namespaces."""
    uid, gid = os.getuid(), os.getgid()
    lib = libc()
    lib.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # /proc/self/*_map must be ours to write
    check(lib.unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS), "unshare(user, pid, mount)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def mount_tmpfs(target: bytes, size_mb: int) -> None:
    lib = libc()
    lib.umount2(target, MNT_DETACH)  # drop the previous test's scratch (fails harmlessly the first time)
    # Inodes too: empty files and directories take no size, but each holds kernel memory that no
    # process limit counts (a program made 154,000 in 0.8 s, 128 MB), and a tmpfs's default allows millions.
    options = f"size={size_mb}m,nr_inodes={max(1024, size_mb * 1024)},mode=1777"
    check(lib.mount(b"tmpfs", target, b"tmpfs", 0, options.encode()), "mount tmpfs")


class Scratch:
    """The programs' /tmp. A program that left it exactly as it found it (no entries, no extended
    attributes, same mode) hands it on as is; any other gets a fresh tmpfs (a remount costs about
    as much as the program's fork, so most programs, which write nothing, skip it)."""

    def __init__(self) -> None:
        self.size_mb: int | None = None

    def prepare(self, size_mb: int) -> None:
        if size_mb != self.size_mb or not self.untouched():
            mount_tmpfs(b"/tmp", size_mb)
            self.size_mb = size_mb

    @staticmethod
    def untouched() -> bool:
        try:
            info = os.lstat("/tmp")
            return info.st_mode == 0o41777 and not os.listdir("/tmp") and not os.listxattr("/tmp")
        except OSError:
            return False


_capset_args = None


def capset_args() -> tuple:
    """capset(2)'s arguments for "no capabilities", built once in I (P only calls it: less to copy)."""
    global _capset_args
    if _capset_args is None:
        import ctypes

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

        header = Header(0x20080522, 0)
        _capset_args = (header, ctypes.pointer(header), (Data * 2)())
    return _capset_args


def drop_capabilities() -> None:
    """No capabilities, none to regain: the program cannot undo mounts or remount /proc."""
    lib = libc()
    lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _, header, data = capset_args()
    check(lib.capset(header, data), "capset")
    if seccomp_args() is not None:
        check(lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, seccomp_args(), 0, 0), "seccomp")


# The program's system-call policy (see codeplan/judge/policy.py): a classic BPF program that the
# judge built with libseccomp and sent in its hello message. The worker only loads it, in each P
# (after its capabilities are dropped), so it needs no library inside the sandbox.
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
_seccomp_args: list = []  # [(prctl's pointer argument, the structures it points into)] once set


def set_filter(program: bytes | None) -> None:
    """Keep `program` (sock_filter array bytes) as prctl's argument, built once in W before any fork."""
    if program is None:
        return
    import ctypes

    class Program(ctypes.Structure):  # struct sock_fprog
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.c_void_p)]

    code = ctypes.create_string_buffer(program, len(program))
    _seccomp_args.append((ctypes.pointer(Program(len(program) // 8, ctypes.addressof(code))), code))


def seccomp_args():
    """prctl's filter argument, or None when the judge sent no filter."""
    return _seccomp_args[0][0] if _seccomp_args else None


def filter_check() -> str:
    """Load the filter in a throwaway child and try to create a user namespace there (which this
    process can: it does so next): "refused" when the filter took effect, else what went wrong."""
    pid = os.fork()
    if pid == 0:
        lib = libc()
        code = 3
        try:
            lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            code = 2 if lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, seccomp_args(), 0, 0) != 0 else 1
            if code == 1 and lib.unshare(CLONE_NEWUSER) != 0:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return {0: "refused", 1: "the filter loaded but a user namespace could still be created",
            2: "the kernel refused to load the filter (prctl PR_SET_SECCOMP failed)"}.get(code, "the check crashed")


# ---------------------------------------------------------------- names the APPS harness pre-imports
APPS_PREAMBLE = (
    "import sys, time, itertools, collections, math, fractions, random, heapq\n"
    "from itertools import accumulate, product, permutations, combinations\n"
    "from collections import Counter, OrderedDict, deque, defaultdict, ChainMap\n"
    "from functools import lru_cache\n"
    "from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\n"
    "from typing import List, Tuple\n"
    "from heapq import *\n"
)
PRELOAD = ("builtins fcntl collections itertools functools heapq bisect re string random fractions decimal copy "
           "operator typing statistics datetime array json time threading traceback io math cmath "
           "queue dataclasses enum resource").split()
PREAMBLE_NAMES: dict = {}  # what APPS_PREAMBLE binds, run once in the worker (every test gets a copy)


class LazyModule:
    """`np` in the APPS preamble: numpy is imported on first use, so programs that never touch it
    do not pay for it (and the worker stays small, which keeps fork cheap)."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str):
        return getattr(__import__(object.__getattribute__(self, "_name")), attr)


# ---------------------------------------------------------------- the program process (P)
def program_process(sandbox: bool, cmd_r: int, res_w: int, out_fd: int, err_fd: int, job: dict, code,
                    first: int) -> None:
    """P: forked by I once the program compiled, so it inherits the job, its tests and the code
    object; runs the job's tests from `first` on back to back, then any test I passes on.

    Each test gets fresh stdin/stdout/stderr (memory files), a fresh global namespace (stdin,
    assert programs) and a CPU allowance; a call-based program's module is loaded once, as the APPS
    harness does. A test that kills this process is reported by I, which forks a new P for the next.
    """
    import builtins
    import fcntl
    import resource

    # fds: 3 requests in, 4 results out, 5/6 the stdout/stderr memory files that I reads too
    # (after a crash), 7 the stdin memory file, rewritten for each test.
    stdin_file = os.memfd_create("stdin", 0)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100 + i) for i, fd in enumerate((cmd_r, res_w, out_fd, err_fd, stdin_file))]
    for fd, target in zip(high, (3, 4, 5, 6, 7)):
        os.dup2(fd, target)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(8, 1 << 16)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any interpreter (I dropped it)
    os.setsid()  # its own process group: killpg(0) must not reach the worker (groups cross PID namespaces)
    if sandbox:
        if seccomp_args() is None:
            # No filter (syscall_policy "off"): System V IPC objects outlive the processes that
            # made them, so in the worker's IPC namespace they would hold memory after the program
            # ended and reach the next programs; this namespace dies with the program's processes.
            # (Both filters refuse them, and this would cost a fork's worth of time for nothing.)
            check(libc().unshare(CLONE_NEWIPC), "unshare(ipc)")
        drop_capabilities()
        os.chdir("/tmp")  # I mounted (or checked) this program's scratch before forking P
    home = os.getcwd()  # the program's scratch: /tmp in the sandbox, the worker's own directory without
    limits = job["limits"]
    per_test = max(1, math.ceil(limits["cpu"]))
    budget = per_test * job.get("tests", 1) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (per_test, budget))
    memory = limits["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))  # POSIX message queues outlive their processes too
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    fsize = max(limits["file_mb"] << 20, limits["output_bytes"] + 1)
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a write over the limit must end the test
    stack = min(memory, 512 << 20)
    resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
    if job["sandbox"]:
        # Counted per user namespace: only this worker's program processes (+1 for its init).
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"] + 1, limits["processes"] + 1))
    sys.argv = ["main.py"]
    sys.setrecursionlimit(job.get("recursion_limit", 1000))
    loaded = None

    def fresh_namespace() -> dict:
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        if job["preamble"]:
            namespace.update(PREAMBLE_NAMES)
        return namespace

    tests, index = job.get("run", []), first
    while True:
        if index < len(tests):
            test = tests[index]
        else:
            try:
                test = recv(3)
            except (EOFError, OSError, ValueError):
                os._exit(0)
            if test.get("op") != "test":
                os._exit(0)
        index += 1
        stdin_bytes = (test.get("stdin") or "").encode("utf-8")
        set_stdin(stdin_bytes)
        input_file = job.get("input_file") and test["mode"] == "stdin" and put_input_file(home, stdin_bytes, fsize)
        for fd, target in ((5, 1), (6, 2)):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, 0)
            os.dup2(fd, target)
        # Like the interpreter's own (fast-IO templates read .mode, .buffer, .fileno()).
        # (An explicit buffer size spares open() its isatty probe.)
        sys.stdin = open(0, "r", 8192, encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = open(1, "w", 8192, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        our_stdout = sys.stdout
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        resource.setrlimit(resource.RLIMIT_CPU, (min(budget, math.ceil(used + limits["cpu"])), budget))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used_children = children.ru_utime + children.ru_stime
        mode = test["mode"]
        status: dict = {"phase": "run"}
        try:
            value = None
            try:
                if mode == "call":
                    status["phase"] = "load"
                    if loaded is None:
                        loaded = fresh_namespace()
                        exec(code, loaded)
                    target = find_entry(loaded, job["entry_point"])
                    status["phase"] = "run"
                    value = target(*decode_value(test["input"]))
                else:
                    namespace = fresh_namespace()
                    exec(code, namespace)
                    if mode in ("assert", "expr") and job.get("setup"):
                        exec(compile(job["setup"], "<test_setup>", "exec"), namespace)
                    if mode == "assert":
                        exec(compile(test["input"], "<test>", "exec"), namespace)
                    elif mode == "expr":
                        value = eval(compile(test["input"], "<test>", "eval"), namespace)
            except SystemExit as stop:
                if mode in ("call", "expr"):
                    raise RuntimeError(f"the program exited (SystemExit {stop.code!r}) instead of returning") from None
            if mode == "stdin":
                wait_threads()
                run_atexit()  # e.g. buffered-output templates flush from an atexit handler
            status["ok"] = True
            if mode in ("call", "expr"):
                if isinstance(value, tuple) and job["preamble"]:
                    value = list(value)  # APPS: ground-truth sequences are lists
                status["value"] = encode_value(value)
        except BaseException as exc:  # noqa: BLE001 - everything a program raises is a verdict
            status.update(ok=False, exc=type(exc).__name__, message=safe_str(exc)[:500])
        for stream in {id(s): s for s in (sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__, our_stdout)}.values():
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - the program may have closed or replaced it
                pass
        if input_file:
            remove_input_file(home)  # an untouched scratch is handed on to the next program as is
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
        status["cpu"] = total - used - used_children
        status["cpu_total"] = total  # I subtracts it from P's final usage if the next test kills P
        status["maxrss_kb"] = usage.ru_maxrss
        # The outputs travel with the result, so P can go on to the next test (and reuse the files)
        # without waiting for I to read them.
        try:
            stdout = read_file(5, limits["output_bytes"])
            status["stdout_bytes"] = -1 if stdout is None else len(stdout)
        except OSError:  # the program closed P's copy of the file: I reads its own
            stdout, status["stdout_bytes"] = None, -2
        try:
            stderr = read_file(6, STDERR_TAIL, tail=True) or b""
        except OSError:
            stderr = b""
        status["stderr_bytes"] = len(stderr)
        try:
            send(4, status, stdout or b"", stderr)
        except BaseException:  # noqa: BLE001 - a result the codec cannot carry
            os._exit(1)


def set_stdin(data: bytes) -> None:
    """fd 0 = a test's input: the stdin memory file (fd 7) rewritten, or /dev/null when empty.
    A program that closed or replaced fd 7 costs the next test a fresh memory file, or (where the
    seccomp filter refuses memfd_create) that test's own runtime error."""
    if not data:
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        return
    try:
        os.ftruncate(7, 0)
    except OSError:
        stdin = os.memfd_create("stdin", 0)
        os.dup2(stdin, 7)
        os.close(stdin)
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(7, view[offset:], offset)
    os.lseek(7, 0, 0)
    os.dup2(7, 0)


# APPS compatibility: the official harness mocks `open`, so a Codeforces-style program that reads
# `input.txt` gets the test's input there. Here a stdin test's input is also written to input.txt
# in the program's working directory (its scratch) before the test, and removed after it.
INPUT_FILE = "input.txt"


def put_input_file(home: str, data: bytes, fsize: int) -> bool:
    """Write `home`/input.txt afresh (whatever the program left under that name is replaced);
    False (no file) when the input is larger than the program may write, or the scratch is full."""
    path = os.path.join(home, INPUT_FILE)
    remove_input_file(home)
    if len(data) >= fsize:  # past RLIMIT_FSIZE the write would kill P with SIGXFSZ
        return False
    try:
        os.chdir(home)  # a program may have moved away in an earlier test
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:  # no space left in the scratch: no file rather than a truncated one
        os.close(fd)
        remove_input_file(home)
        return False
    os.close(fd)
    return True


def remove_input_file(home: str) -> None:
    path = os.path.join(home, INPUT_FILE)
    try:
        os.unlink(path)
    except IsADirectoryError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


STDERR_TAIL = 2000  # bytes of a test's stderr kept (the end, where tracebacks are)


def read_file(fd: int, limit: int, tail: bool = False) -> bytes | None:
    """What a test wrote to one of the output memory files; None when over `limit` bytes (unless
    `tail`: then its last `limit` bytes)."""
    size = os.fstat(fd).st_size
    if size > limit and not tail:
        return None
    offset = max(0, size - limit)
    chunks, got = [], 0
    while offset + got < size:
        chunk = os.pread(fd, min(1 << 20, size - offset - got), offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def run_atexit() -> None:
    """What interpreter exit does: run the handlers the program registered (then forget them)."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        atexit._clear()


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "?"


def wait_threads() -> None:
    """A normal interpreter waits for non-daemon threads at exit; so do we (APPS programs use them)."""
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def find_entry(namespace: dict, name: str):
    """The function `name`, or the method of a LeetCode-style `class Solution`."""
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, name):
        return getattr(solution(), name)
    if name in namespace and callable(namespace[name]):
        return namespace[name]
    raise NameError(f"the program defines no function {name!r}")


# ---------------------------------------------------------------- the worker's init (I)
class Child:
    """A forked P running the program from test `first` on, and I's ends of its channels."""

    def __init__(self, job: dict, code, first: int) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.out_fd, self.err_fd = os.memfd_create("stdout", 0), os.memfd_create("stderr", 0)
        pid = os.fork()
        if pid == 0:
            try:
                program_process(job["sandbox"], cmd_r, res_w, self.out_fd, self.err_fd, job, code, first)
            finally:
                os._exit(1)
        os.close(cmd_r)
        os.close(res_w)
        os.set_blocking(self.cmd_w, False)  # see Session.run_test
        self.pid, self.pidfd = pid, os.pidfd_open(pid)
        self.buffer = bytearray()  # result bytes read ahead of the test being waited for
        self.header: dict | None = None  # the checked status of the frame at the buffer's head
        self.channel_open = True
        self.cpu_before = 0.0  # P's CPU seconds when its last reported test ended
        self.clock = ((~pid) << 3) | 2  # P's process CPU clock (all its threads), clock_getcpuclockid's encoding

    def cpu_clock(self) -> float:
        """P's CPU seconds so far, read from outside (0 once it is gone)."""
        try:
            return time.clock_gettime(self.clock)
        except OSError:
            return 0.0

    def close(self) -> None:
        for fd in (self.cmd_w, self.res_r, self.pidfd, self.out_fd, self.err_fd):
            os.close(fd)


SCALARS = (int, float, str, bool, type(None))
SKELETON_STRINGS = None  # compiled on first use: most frames are small and never need it


def checked_status(blob: bytes, output_bytes: int) -> dict:
    """A result frame's status as the judge may see it. Anything in P can write frames (the program
    shares P with the harness), so what passes on is rebuilt from the fields the judge reads, each
    of its type; a returned value is decoded and encoded again here, which bounds its depth and size
    as `encode_value` bounds an honest one (a forged, deeply nested value would otherwise overflow
    the judge's stack, and a frame of `[[],[],...]` would inflate to gigabytes in I and the judge)."""
    global SKELETON_STRINGS
    if len(blob) > (4 << 20):  # big enough to matter: count the JSON containers before building them
        if SKELETON_STRINGS is None:
            import re

            SKELETON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
        skeleton = SKELETON_STRINGS.sub(b"", blob)
        if skeleton.count(b"[") + skeleton.count(b"{") + skeleton.count(b",") > 8_000_000:
            raise TooLarge("too many values")
    raw = json.loads(blob)
    out, err = raw["stdout_bytes"], raw["stderr_bytes"]
    if not (type(out) is int and type(err) is int and -2 <= out <= output_bytes and 0 <= err <= STDERR_TAIL):
        raise ValueError("bad output sizes")
    status: dict = {"stdout_bytes": out, "stderr_bytes": err}
    for key in ("cpu", "cpu_total", "maxrss_kb"):
        number = float(raw.get(key, 0.0))
        status[key] = number if math.isfinite(number) else 0.0  # the clock I reads bounds a lie
    if "ok" in raw:
        status["ok"] = raw["ok"] is True
    for key in ("phase", "exc", "message"):
        if key in raw:
            status[key] = str(raw[key])[:500]
    if "value" in raw:
        value = raw["value"]
        flat = type(value) in SCALARS or (type(value) is list and all(type(item) in SCALARS for item in value))
        status["value"] = value if flat else encode_value(decode_value(value))  # the common shapes skip the round trip
    return status


class Session:
    """I's state for the program being judged: at most one live P, forked when a test needs it."""

    def __init__(self, job: dict, code) -> None:
        self.job = job
        self.code = code
        self.child: Child | None = None
        self.index = 0  # tests started so far

    def run_test(self, test: dict | None = None) -> dict:
        """The next test's outcome: the next of the job's own tests (P runs those back to back), or
        `test`, sent by the judge after the job's tests (early exit)."""
        if self.child is None:
            self.child = Child(self.job, self.code, self.index)
        child = self.child
        self.index += 1
        start = time.monotonic()
        # A test I passes on is written as P takes it, never with a blocking write: a program that
        # stops reading its request channel (or hands it to a child) would otherwise stall I, and
        # with it the deadlines below, until the judge gave up on the whole worker.
        pending = memoryview(encode_message(test)) if test is not None else memoryview(b"")
        limits = self.job["limits"]
        deadline = start + limits["wall"]
        # P reports its own CPU time, and a program can tamper with that (and ignore SIGXCPU), so I
        # also watches P's CPU clock from outside: past the limit (+10% and 0.1 s for P running
        # ahead into the next test) the test is stopped as a timeout.
        cpu_start = child.cpu_clock()
        cpu_cap = limits["cpu"] * 1.1 + 0.1
        while True:
            parsed = self.parse(child)
            if parsed is not None:
                if "protocol" in parsed:
                    return self.finish(parsed, start, kill=True)
                measured = child.cpu_clock() - cpu_start
                if measured > cpu_cap * 2:  # wildly more than it reported: it lied; generous, as P may run ahead
                    parsed.update(cpu=max(parsed["cpu"], measured), cpu_overrun=True)
                return self.outcome(parsed, start)
            now, used = time.monotonic(), child.cpu_clock() - cpu_start
            if used > cpu_cap:
                return self.finish({"cpu_overrun": True}, start, kill=True)
            if now >= deadline:
                return self.finish({"wall_timeout": True}, start, kill=True)
            # Wake up when the wall deadline or the CPU cap could be reached (CPU time runs no
            # faster than wall time per thread, so this wakes early rather than late).
            wait = min(deadline - now, max(0.01, cpu_cap - used))
            watch = [child.res_r, child.pidfd] if child.channel_open else [child.pidfd]
            ready, writable, _ = select.select(watch, [child.cmd_w] if pending else [], [], wait)
            if writable:
                try:
                    pending = pending[os.write(child.cmd_w, pending[:1 << 16]):]
                except BlockingIOError:
                    pass
                except OSError:
                    pending = memoryview(b"")  # P and everything holding the channel are gone: its wait status says how
            if child.res_r in ready:
                chunk = os.read(child.res_r, 1 << 16)
                if chunk:
                    child.buffer += chunk
                else:
                    child.channel_open = False  # closed by the program: wait for P's end or the deadline
            elif child.pidfd in ready:
                return self.finish({}, start, kill=False)

    def parse(self, child: Child) -> dict | None:
        """A complete result at the head of the buffer (removed from it), a protocol error, or None."""
        garbage = {"protocol": "garbage on the result channel"}
        buffer = child.buffer
        if len(buffer) < 4:
            return None
        need = 4 + struct.unpack(">I", bytes(buffer[:4]))[0]
        if need > (64 << 20):
            return garbage
        if len(buffer) < need:
            return None
        if child.header is None:  # checked once per frame, not again for each chunk of its outputs
            try:
                child.header = checked_status(bytes(buffer[4:need]), self.job["limits"]["output_bytes"])
            except Exception:  # noqa: BLE001 - whatever a forged frame raises (a "$complex" of a huge int: OverflowError)
                return garbage
        status = child.header
        out, err, cpu, total = status["stdout_bytes"], status["stderr_bytes"], status["cpu"], status["cpu_total"]
        end = need + max(out, 0) + err
        if len(buffer) < end:
            return None
        stdout: bytes | None = bytes(buffer[need:need + max(out, 0)])
        stderr = bytes(buffer[need + max(out, 0):end])
        del buffer[:end]
        child.header = None
        child.cpu_before = total
        if out == -1:
            stdout = None
        elif out == -2:  # P could not read it (the program closed P's copy); nor can P rewrite it now
            stdout = read_file(child.out_fd, self.job["limits"]["output_bytes"])
        return {"status": status, "cpu": cpu, "maxrss_kb": status.get("maxrss_kb", 0), "output_limit": stdout is None,
                "stdout": (stdout or b"").decode("utf-8", errors="replace"),
                "stderr": stderr.decode("utf-8", errors="replace")}

    def outcome(self, fields: dict, start: float) -> dict:
        result = {"status": None, "wall": time.monotonic() - start, "exit": None, "signal": None, "maxrss_kb": 0,
                  "wall_timeout": False, "cpu_overrun": False, "output_limit": False, "stdout": "", "stderr": ""}
        result.update(fields)
        return result

    def finish(self, extra: dict, start: float, kill: bool) -> dict:
        """P ended (or must): its wait status is the test's outcome; leftovers die."""
        child = self.child
        if kill:
            os.kill(child.pid, signal.SIGKILL)
        _, wait_status, usage = os.wait4(child.pid, 0)
        stdout = read_file(child.out_fd, self.job["limits"]["output_bytes"])
        fields = {"cpu": max(0.0, usage.ru_utime + usage.ru_stime - child.cpu_before), "maxrss_kb": usage.ru_maxrss,
                  "exit": os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else None,
                  "signal": os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None,
                  "output_limit": stdout is None, "stdout": (stdout or b"").decode("utf-8", errors="replace"),
                  "stderr": (read_file(child.err_fd, STDERR_TAIL, tail=True) or b"").decode("utf-8", errors="replace"),
                  **extra}
        if fields["signal"] == signal.SIGXFSZ:
            fields["output_limit"] = True
        result = self.outcome(fields, start)
        self.reset()
        return result

    def reset(self) -> None:
        """Close P's channels and kill every process of the program (P, its children, escapees)."""
        pid = self.child.pid if self.child else 0
        if self.child is not None:
            self.child.close()
        self.child = None
        if self.job["sandbox"]:
            try:
                os.kill(-1, signal.SIGKILL)  # from a namespace's init: every other process in it
            except ProcessLookupError:
                pass
        elif pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def compile_program(job: dict):
    try:
        return compile(job["code"], "<program>", "exec")
    except SyntaxError:
        if not job.get("apps_wrap"):
            raise
        # The APPS harness runs stdin programs as the body of a function, so its solutions may
        # `return` at top level or use `nonlocal` on top-level names. Those only compile wrapped.
        return compile(wrap_in_function(job["code"]), "<program>", "exec")


def wrap_in_function(code: str) -> str:
    """Leading import lines stay at module level; everything else becomes the body of a function."""
    head, body, started = [], [], False
    for line in code.split("\n"):
        if not started and (line.startswith("import ") or line.startswith("from ")):
            head.append(line)
        else:
            started = True
            body.append("\t" + line)
    return "\n".join(head + ["def __program__():"] + (body or ["\tpass"]) + ["__program__()", ""])


def init_loop(ctl_in: int, ctl_out: int, sandbox: bool) -> None:
    """I: one program at a time. A program message carries the tests to run at once (`run`); more
    may follow one by one (early exit); `end` closes the program. Replies: one for the compilation,
    one per test, and `ended` once every process of the program is gone."""
    if sandbox:
        capset_args()
    # The loaded interpreter's objects are never scanned by P's collector, so fewer of I's pages
    # are written (and copied) in P.
    gc.freeze()
    scratch = Scratch() if sandbox else None
    while True:
        try:
            job = recv(ctl_in)
        except EOFError:
            os._exit(0)
        if job.get("op") == "quit":
            os._exit(0)
        if job.get("op") != "program":
            send(ctl_out, {"error": f"unexpected request {job.get('op')!r}"})
            continue
        job["sandbox"] = sandbox
        session = None
        try:
            code = compile_program(job)
        except BaseException as exc:  # noqa: BLE001 - SyntaxError, MemoryError, RecursionError...
            send(ctl_out, {"compiled": False, "compile_error": f"{type(exc).__name__}: {safe_str(exc)}"[:500]})
        else:
            if scratch is not None:
                scratch.prepare(job["limits"]["file_mb"])  # the program's private, empty scratch
            send(ctl_out, {"compiled": True})
            session = Session(job, code)
            for _ in job.get("run", []):
                send(ctl_out, session.run_test())
        while True:
            msg = recv(ctl_in)
            if msg.get("op") != "test":
                break
            if session is not None:
                send(ctl_out, session.run_test(msg))
        if session is not None:
            session.reset()  # every process but I dies between programs
        send(ctl_out, {"ended": True})


# ---------------------------------------------------------------- the worker (W)
def self_check(sandbox: bool) -> dict:
    """What the judge verifies before it trusts the sandbox."""
    import socket

    report = {"python": sys.version.split()[0], "uid": os.getuid()}
    if sandbox:
        try:
            probe = socket.create_connection(("127.0.0.1", 9), timeout=0.5)
            probe.close()
            report["network"] = True
        except OSError:
            report["network"] = False
        report["network_interfaces"] = sorted(name for _, name in socket.if_nameindex())
        if seccomp_args() is not None:
            report["seccomp"] = filter_check()
    return report


class _Exit:
    """`exit()` / `quit()` as the site module defines them (the worker runs without site)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() to exit"

    def __call__(self, code=None):
        raise SystemExit(code)


def main() -> None:
    import builtins

    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    hello = recv(ctl_in)
    sandbox = bool(hello["sandbox"])
    if hello.get("switch_user") is not None and os.getuid() == 0:
        # Root started the sandbox: become an ordinary user so process limits apply (root is exempt).
        uid = hello["switch_user"]
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    for path in hello.get("sys_path", []):
        sys.path.append(path)
    if sandbox and hello.get("seccomp"):
        set_filter(bytes.fromhex(hello["seccomp"]))
    for name in PRELOAD + list(hello.get("preload", [])):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - optional modules may be absent
            pass
    builtins.exit, builtins.quit = _Exit("exit"), _Exit("quit")
    exec(compile(APPS_PREAMBLE, "<apps preamble>", "exec"), PREAMBLE_NAMES)
    del PREAMBLE_NAMES["__builtins__"]
    PREAMBLE_NAMES["np"] = LazyModule("numpy")
    report = self_check(sandbox)
    if not sandbox:
        # No private /tmp: each worker's programs get a directory of their own in the judge's
        # scratch (for input.txt), so that workers do not overwrite each other's files.
        home = os.path.join(os.getcwd(), f"worker-{os.getpid()}")
        os.mkdir(home)
        os.chdir(home)
        send(ctl_out, {"ready": True, **report})
        init_loop(ctl_in, ctl_out, sandbox)
        return
    try:
        enter_namespaces()
    except OSError as err:
        send(ctl_out, {"ready": False, "error": f"cannot create namespaces for programs: {err}"})
        return
    init = os.fork()  # PID 1 of the programs' namespace: when it exits, the kernel kills the rest
    if init == 0:
        try:
            # A namespace's init gets from its members only the signals it handles: the interpreter
            # handles SIGINT, which a program could send to PID 1 to kill I (and the worker).
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # Hide /proc: programs see no process at all, not even the worker's.
            check(libc().mount(b"tmpfs", b"/proc", b"tmpfs", 0, b"size=4k,mode=555"), "mount tmpfs on /proc")
            send(ctl_out, {"ready": True, **report})
        except BaseException as exc:  # noqa: BLE001
            send(ctl_out, {"ready": False, "error": f"cannot set up the programs' namespace: {exc}"})
            os._exit(3)
        init_loop(ctl_in, ctl_out, sandbox)
        os._exit(0)
    os.close(ctl_in)
    os.close(ctl_out)
    os.waitpid(init, 0)


if __name__ == "__main__":
    main()
