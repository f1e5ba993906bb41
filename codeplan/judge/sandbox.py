"""How a worker process is started: inside bubblewrap (default) or, on request, without isolation.

The sandbox a worker lives in (bubblewrap, `bwrap`, from the distribution):
- a fresh root: the Python runtime and the system libraries read-only (/usr, the interpreter's
  prefix, the site-packages the judge chooses), an empty /tmp, a minimal /dev; nothing else exists
  there (no datasets, no home, no project tree, no judge files);
- new network (only a downed loopback), IPC, UTS, cgroup and PID namespaces; a new session (no
  terminal to push input into with TIOCSTI);
- the root read-only once everything is mounted (--remount-ro /: an ordinary user's worker owns
  bubblewrap's root tmpfs and could otherwise fill it); no capabilities beyond those listed below;
- an empty environment (the judge's variables, secrets included, never reach it);
- dies with the judge (--die-with-parent).
bubblewrap's --disable-userns does not apply: the worker itself creates the programs' user
namespace; the programs' seccomp filter refuses further namespaces instead (`policy.py`).
Each program then gets its own user + PID + mount namespace inside it (see `_worker.py`).
When root starts the judge, the worker drops to an ordinary uid (process limits do not apply to
root) after bubblewrap has mounted everything.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
from pathlib import Path

from codeplan.errors import SetupError

WORKER_SOURCE = Path(__file__).with_name("_worker.py")
# Environment of every worker (and so of every program): nothing from the judge's.
WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",  # same set/dict-of-str order in every worker: results do not depend on scheduling
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
NOBODY = 65534


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SetupError(
            "the judge's sandbox needs bubblewrap, and `bwrap` is not installed: run `apt-get install -y bubblewrap` "
            "(`make install` does it as root), or pass --unsafe-no-sandbox to run untrusted programs without isolation"
        )
    return path


def interpreter(python: str | None) -> str:
    """The real interpreter binary (a venv's `python` is a symlink to it)."""
    return os.path.realpath(python or sys.executable)


def runtime_paths(python: str, site_packages: bool) -> tuple[list[str], list[str]]:
    """(read-only mounts, extra sys.path entries) that the interpreter needs."""
    exe = Path(python)
    prefix = Path(os.path.realpath(sys.base_prefix)) if python == os.path.realpath(sys.executable) else exe.parent.parent
    mounts = [str(prefix), str(exe.parent)]
    paths: list[str] = []
    if site_packages:
        # The judge's own site-packages (numpy and friends for APPS programs). An editable install of
        # codeplan lives outside it, so the project's files stay invisible.
        for directory in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]:
            real = os.path.realpath(directory)
            if os.path.isdir(real) and real not in paths:
                paths.append(real)
                mounts.append(real)
    unique: list[str] = []
    for mount in mounts:
        if not any(mount == m or mount.startswith(m.rstrip("/") + "/") for m in unique):
            unique.append(mount)
    return [m for m in unique if not m.startswith("/usr/")], paths


def bwrap_command(python: str, site_packages: bool) -> tuple[list[str], list[str]]:
    """The bubblewrap command line that starts one worker, and the sys.path it needs."""
    mounts, paths = runtime_paths(python, site_packages)
    cmd = [find_bwrap(), "--die-with-parent", "--new-session", "--clearenv",
           "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
           "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        host = Path("/") / name
        if host.is_symlink():
            cmd += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            cmd += ["--ro-bind", str(host), str(host)]
    made: set[str] = {"/", "/usr", "/tmp"}
    for mount in mounts:
        # /tmp is the programs' scratch (a fresh tmpfs): a runtime folder under it (a virtualenv in
        # a checkout below /tmp, say) is shown elsewhere, and sys.path follows it there.
        target = "/run/codeplan-runtime" + mount if mount == "/tmp" or mount.startswith("/tmp/") else mount
        if target != mount:
            paths = [target + p[len(mount):] if p == mount or p.startswith(mount + "/") else p for p in paths]
        # Parent directories are created world-readable: the worker may run as an unprivileged uid.
        for parent in reversed(Path(target).parents):
            if str(parent) not in made:
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        cmd += ["--ro-bind", mount, target]
        made.add(target)
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp"]
    if os.geteuid() == 0:
        # Root: bubblewrap runs privileged, keeps only what the worker needs to become `nobody`.
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user", "--cap-drop", "ALL"]
    for key, value in WORKER_ENV.items():
        cmd += ["--setenv", key, value]
    return cmd, paths


def worker_command(python: str | None, sandbox: bool, site_packages: bool) -> tuple[list[str], list[str]]:
    """argv that starts a worker, and the sys.path entries to send it."""
    exe = interpreter(python)
    argv = [exe, "-s", "-S", "-P", "-c", WORKER_SOURCE.read_text(encoding="utf-8")]
    if not sandbox:
        _, paths = runtime_paths(exe, site_packages)
        return argv, paths
    cmd, paths = bwrap_command(exe, site_packages)
    return cmd + ["--"] + argv, paths


def switch_user() -> int | None:
    return NOBODY if os.geteuid() == 0 else None
