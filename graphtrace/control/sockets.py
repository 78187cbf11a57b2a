"""Unix sockets under ``TRACE_DIR/control/``: naming, binding privately, the peer's uid, staleness.

Each process that has gates waiting binds its own socket, ``control/<pid>-<random>.sock``, so
two processes writing to one trace dir never collide, and the pid in the name tells a client
(or the next process) whether the socket's owner is still alive.

Who may answer: the directory is made mode 0700 and the socket 0600, so other users cannot
even reach it; and the server checks each peer's uid from the kernel (``SO_PEERCRED`` on Linux,
``LOCAL_PEERCRED`` on the BSDs and macOS) in case the modes were widened. Where neither exists
the file modes are the only guard, and :func:`peer_uid` returns None to say so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "CONTROL_DIR",
    "ControlDirError",
    "bind_private",
    "connect",
    "control_dir",
    "owner_pid",
    "peer_uid",
    "pid_alive",
    "socket_name",
    "sweep_stale",
]

CONTROL_DIR: Final = "control"
SUFFIX: Final = ".sock"
# sockaddr_un holds 108 bytes on Linux, 104 on macOS, the terminating NUL included
_MAX_PATH: Final = 100
_NAME = re.compile(r"^(\d+)-[0-9a-f]+\.sock$")


class ControlDirError(OSError):
    """The control directory cannot be made private to this user."""


def control_dir(trace_dir: Path, *, create: bool = False) -> Path:
    """``trace_dir/control``; with ``create``, made (or narrowed to) mode 0700 and checked ours."""
    path = trace_dir / CONTROL_DIR
    if not create:
        return path
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ControlDirError(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise ControlDirError(
            f"{path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}): "
            "use a trace dir of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)  # made wider by hand or by an old umask: only we may reach it
    return path


def socket_name(pid: int | None = None) -> str:
    """A fresh socket file name for this process: ``<pid>-<8 random hex>.sock``."""
    return f"{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}{SUFFIX}"


def owner_pid(path: Path | str) -> int | None:
    """The pid in a control socket's name, or None for a name that is not ours."""
    match = _NAME.match(Path(path).name)
    return int(match[1]) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process with that pid exists (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def sweep_stale(directory: Path) -> list[Path]:
    """Remove sockets whose owning process is gone (killed before it could clean up).

    A socket whose pid is alive is left alone, even if that pid was reused: the client finds
    such a socket refuses connections and skips it.
    """
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for path in entries:
        pid = owner_pid(path)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):  # another process swept it first
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """A name ``bind``/``connect`` accept for ``path``, however long the trace dir's path.

    sockaddr_un holds about 100 bytes; deep trace dirs (a pytest tmp dir, a home directory on a
    network mount) exceed it. On Linux ``/proc/self/fd/<dirfd>/<name>`` reaches the same file
    through an open descriptor of its directory, in a few dozen bytes.
    """
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= _MAX_PATH:
        yield text
        return
    if not sys.platform.startswith("linux"):
        raise OSError(
            errno.ENAMETOOLONG,
            f"socket path {text} is longer than {_MAX_PATH} bytes: use a shorter --trace-dir",
        )
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def bind_private(path: Path, *, backlog: int = 128) -> socket.socket:
    """A non-blocking listening socket at ``path`` (replacing a leftover file), mode 0600.

    The directory is 0700, so nobody else can reach the socket in the moment between bind
    and chmod (the umask is per process, so changing it here would race with other threads).
    """
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # our own name: a leftover of this pid's earlier listener
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(path) as address:
            sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return sock


def connect(path: Path, timeout: float) -> socket.socket:
    """A blocking client socket connected to ``path`` with ``timeout`` on every operation.

    Raises FileNotFoundError (no socket there) or ConnectionRefusedError (nobody listens: the
    owner died or closed it), like ``socket.connect`` does.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with _addressable(path) as address:
            sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


_PEERCRED = getattr(socket, "SO_PEERCRED", None)  # Linux: struct ucred {pid, uid, gid}
_LOCAL_PEERCRED = getattr(socket, "LOCAL_PEERCRED", None)  # BSD/macOS: struct xucred
_SOL_LOCAL = 0  # the BSDs' SOL_LOCAL, which Python does not export

PEER_CHECK: Final = (
    "SO_PEERCRED"
    if _PEERCRED is not None
    else "LOCAL_PEERCRED"
    if _LOCAL_PEERCRED is not None
    else None
)
"""How :func:`peer_uid` learns the peer's uid here, or None: file modes alone guard the socket."""


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of ``conn``, from the kernel; None if unknown."""
    if _PEERCRED is not None:
        data = conn.getsockopt(socket.SOL_SOCKET, _PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", data)
        return uid
    if _LOCAL_PEERCRED is not None:
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        data = conn.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, 4 + 4 + 2 + 2 + 16 * 4)
        _version, uid = struct.unpack_from("Ii", data)
        return uid
    return None
