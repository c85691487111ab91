"""Confining the backend worker process: namespaces, Landlock, seccomp, resource limits.

Applied by the worker to itself, in this order, before it reads its first request:

1. `unshare` into a new user, mount, network and IPC namespace (before any thread exists:
   the kernel refuses a new user namespace to a multi-threaded process). The mount namespace
   gets a private tmpfs on /tmp, so a backend that insists on a temporary file (OpenVINO reads
   ONNX/TFLite through one) writes where the host never looks; the network namespace has no
   interface but a downed loopback.
2. resource limits: address space (`--max-host-memory`), CPU seconds, no core dumps.
3. Landlock: every file-system right is handled, and only these are granted: read beneath the
   folders Python and the backend libraries are imported from (lazy imports and plugins need
   them), read of a few CPU-topology files, read/write beneath the private /tmp. TCP bind and
   connect are denied; abstract UNIX sockets and signals to processes outside are scoped away.
4. `PR_SET_NO_NEW_PRIVS` + a seccomp filter: execve/execveat, socket creation, ptrace,
   mount and namespace calls, kernel keyrings, bpf and perf fail with EPERM.

Each layer reports whether it held; the worker sends that report to the host, which warns
once when a layer is missing (e.g. a kernel without Landlock).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import struct
import sys
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# -- namespaces ---------------------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 0x4000, 1 << 18

#: mount points tried, in order, for the worker's private tmpfs (see private_tmp_for)
TMP_CANDIDATES = ("/tmp", "/dev/shm")
#: the private tmpfs of this (worker) process once confine() ran; None without one
private_tmp: str | None = None


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def private_tmp_for(roots: list[str]) -> str | None:
    """Where the private tmpfs goes: /tmp, unless something the worker must read lives under
    it (a checkout or a venv in /tmp would vanish under the tmpfs), then /dev/shm (the worker
    shares memory through memfds, never through it); None when both hold such a root."""
    real = [os.path.realpath(root) for root in roots]
    for candidate in TMP_CANDIDATES:
        if os.path.isdir(candidate) and not any(
                root == candidate or root.startswith(candidate + "/") for root in real):
            return candidate
    return None


def enter_namespaces(private_tmp: str | None) -> str:
    """New user+mount+net+IPC namespaces and a private tmpfs on `private_tmp`; '' or why not."""
    uid, gid = os.getuid(), os.getgid()
    try:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        # map ourselves to root inside, so files in the private tmpfs can be created
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        if private_tmp is not None:
            _check(_libc.mount(b"tmpfs", private_tmp.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                               b"size=1g,mode=0700"), f"mount tmpfs {private_tmp}")
    except OSError as error:
        return f"namespaces unavailable ({error})"
    if private_tmp is not None:
        os.environ["TMPDIR"] = private_tmp
    return ""


# -- resource limits ----------------------------------------------------------------------
def set_limits(max_memory: int | None, max_cpu_seconds: int | None) -> None:
    """Address-space and CPU-time caps (the kernel enforces them; no core files)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if max_memory:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    if max_cpu_seconds:
        # soft limit: SIGXCPU (the worker dies and the host reports it); hard: SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (max_cpu_seconds, max_cpu_seconds + 1))


# -- Landlock -----------------------------------------------------------------------------
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_V1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS = 38

#: files the CPU plugins read to learn the machine's topology (read-only, harmless)
_SYSTEM_READS = ("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu",
                 "/sys/devices/system/node", "/sys/fs/cgroup", "/sys/bus/pci/devices",
                 "/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/dev/zero")
#: files a library may open for writing: /dev/null only (llama.cpp silences its log by
#: redirecting stdout/stderr there); writing to it reaches nothing
_SYSTEM_WRITES = ("/dev/null",)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                            ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(version, 0)


def library_roots() -> list[str]:
    """Folders Python and the backends import from: the interpreter's prefixes and sys.path
    entries (never the current folder), and the system library folders."""
    cwd = os.getcwd()
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo"}
    for entry in sys.path:
        if entry and os.path.isabs(entry) and os.path.realpath(entry) != os.path.realpath(cwd):
            roots.add(entry)
    return sorted(r for r in roots if os.path.exists(r))


def apply_landlock(read_roots: list[str], write_roots: list[str]) -> str:
    """Restrict this process's file-system (and TCP) access; '' or why it could not."""
    abi = landlock_abi()
    if abi < 1:
        return "Landlock is not available in this kernel"
    fs = _FS_ALL_V1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        return f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}"
    try:
        read = _FS_READ_FILE | _FS_READ_DIR
        write = fs & ~_FS_EXECUTE
        own_proc = (f"/proc/{os.getpid()}",)     # this process's own /proc entries only
        for roots, access in ((read_roots, read), (_SYSTEM_READS, read), (own_proc, read),
                              (_SYSTEM_WRITES, read | _FS_WRITE_FILE), (write_roots, write)):
            for root in roots:
                _add_path_rule(ruleset, root, access)
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            return f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return ""


def _add_path_rule(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a folder this machine does not have
    try:
        if not os.path.isdir(path):
            # rights that only make sense on folders are refused for a file
            access &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        attr = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
        _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, ctypes.c_uint32(_RULE_PATH_BENEATH), attr,
                      ctypes.c_uint32(0))
    finally:
        os.close(fd)


# -- seccomp ------------------------------------------------------------------------------
_SECCOMP_SET_MODE_FILTER = 1
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
#: syscall numbers denied with EPERM (x86_64, aarch64)
_DENIED = {
    "x86_64": {"execve": 59, "execveat": 322, "socket": 41, "connect": 42, "accept": 43,
               "bind": 49, "listen": 50, "accept4": 288, "ptrace": 101, "process_vm_readv": 310,
               "process_vm_writev": 311, "mount": 165, "umount2": 166, "pivot_root": 155,
               "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250, "add_key": 248,
               "request_key": 249, "bpf": 321, "perf_event_open": 298, "kexec_load": 246,
               "init_module": 175, "finit_module": 313, "fork": 57, "vfork": 58,
               "open_by_handle_at": 304, "userfaultfd": 323, "io_uring_setup": 425},
    "aarch64": {"execve": 221, "execveat": 281, "socket": 198, "connect": 203, "accept": 202,
                "bind": 200, "listen": 201, "accept4": 242, "ptrace": 117,
                "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
                "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "keyctl": 219,
                "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
                "kexec_load": 104, "init_module": 105, "finit_module": 273,
                "open_by_handle_at": 265, "userfaultfd": 282, "io_uring_setup": 425},
}
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_seccomp() -> str:
    """Install the deny-list filter (other architectures than the program was made for are
    killed); '' or why it could not."""
    machine = platform.machine()
    denied = _DENIED.get(machine)
    if denied is None:
        return f"seccomp filter not written for {machine}"
    numbers = sorted(set(denied.values()))
    program = [(_BPF_LD_W_ABS, 0, 0, 4),                               # A = arch
               (_BPF_JEQ_K, 1, 0, _AUDIT_ARCH[machine]),
               (_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
               (_BPF_LD_W_ABS, 0, 0, 0)]                               # A = syscall number
    for position, number in enumerate(numbers):
        to_deny = len(numbers) - position                              # jump to the EPERM return
        program.append((_BPF_JEQ_K, to_deny, 0, number))
    program.append((_BPF_RET_K, 0, 0, _RET_ALLOW))
    program.append((_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(program), ctypes.addressof(buf))
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
    if _libc.syscall(_SYS_SECCOMP[machine], _SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        return f"seccomp failed: {os.strerror(ctypes.get_errno())}"
    return ""


def confine(max_memory: int | None, max_cpu_seconds: int | None,
            extra_read_roots: list[str] = ()) -> dict[str, str]:
    """Apply every layer; returns {layer: problem} for the layers that did not hold."""
    global private_tmp
    problems: dict[str, str] = {}
    roots = library_roots() + list(extra_read_roots)
    candidate = private_tmp_for(roots)
    namespaces = enter_namespaces(candidate)
    if namespaces:
        problems["namespaces"] = namespaces
    elif candidate is None:
        problems["tmp"] = f"no private temporary folder: {' and '.join(TMP_CANDIDATES)} hold libraries"
    private_tmp = candidate if not namespaces else None
    set_limits(max_memory, max_cpu_seconds)
    writable = [private_tmp] if private_tmp is not None else []
    landlock = apply_landlock(roots, writable)
    if landlock:
        problems["landlock"] = landlock
    seccomp = apply_seccomp()
    if seccomp:
        problems["seccomp"] = seccomp
    return problems
