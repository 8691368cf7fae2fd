"""The seccomp filter every bubblewrap run gets: a classic-BPF program, assembled here.

Why hand-assembled: the maintained binding (libseccomp's ``seccomp`` module) ships only
as a Debian package for the system Python, not as a wheel for the interpreter the lab
runs on, and the filter is small and fixed. bwrap loads it with ``--seccomp FD`` right
before it executes the run, after ``no_new_privs`` is set.

What it refuses, with EPERM: mounting and unmounting (the classic way out of a mount
namespace), nested namespaces (``unshare``, ``setns``, ``clone`` with any CLONE_NEW*
flag), ``ptrace`` and cross-process memory access, the kernel keyring, ``bpf``,
``perf_event_open``, ``userfaultfd``, io_uring, loading kernel modules or a new kernel,
swap, reboot, clocks, and file handles that bypass path checks. ``clone3`` gets ENOSYS:
its flags live in memory a filter cannot read, and C libraries then fall back to
``clone``, whose flags it can. ``fallocate`` gets EOPNOTSUPP: it reserves any number of
disk blocks in one call, faster than the disk budget (polled once a second) can see, so
a run filled the host's disk at once; C libraries fall back to writing, at the disk's
own speed. System calls of a foreign ABI (x32, or 32-bit ``int 0x80`` on x86_64) are
refused outright, so the table cannot be sidestepped by a second ABI.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# struct seccomp_data: nr (int), arch (u32), instruction_pointer (u64), args[6] (u64).
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000 | 0x00000080

DENIED = ("mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
          "fsmount", "fspick", "mount_setattr", "unshare", "setns", "ptrace", "process_vm_readv",
          "process_vm_writev", "kcmp", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
          "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load",
          "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon", "swapoff", "reboot",
          "acct", "syslog", "quotactl", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
          "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "vhangup", "iopl", "ioperm", "uselib")

# Numbers from the kernel's unistd tables (x86_64: asm/unistd_64.h; aarch64: asm-generic).
SYSCALLS = {
    "x86_64": dict(
        audit_arch=0xC000003E, clone=56, clone3=435, fallocate=285,
        mount=165, umount2=166, pivot_root=155, chroot=161, open_tree=428, move_mount=429, fsopen=430,
        fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, unshare=272, setns=308, ptrace=101,
        process_vm_readv=310, process_vm_writev=311, kcmp=312, keyctl=250, add_key=248, request_key=249,
        bpf=321, perf_event_open=298, userfaultfd=323, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, kexec_load=246, kexec_file_load=320, init_module=175, finit_module=313,
        delete_module=176, swapon=167, swapoff=168, reboot=169, acct=163, syslog=103, quotactl=179,
        settimeofday=164, clock_settime=227, adjtimex=159, clock_adjtime=305, open_by_handle_at=304,
        name_to_handle_at=303, lookup_dcookie=212, vhangup=153, iopl=172, ioperm=173, uselib=134),
    "aarch64": dict(
        audit_arch=0xC00000B7, clone=220, clone3=435, fallocate=47,
        mount=40, umount2=39, pivot_root=41, chroot=51, open_tree=428, move_mount=429, fsopen=430,
        fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, unshare=97, setns=268, ptrace=117,
        process_vm_readv=270, process_vm_writev=271, kcmp=272, keyctl=219, add_key=217, request_key=218,
        bpf=280, perf_event_open=241, userfaultfd=282, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, kexec_load=104, kexec_file_load=294, init_module=105, finit_module=273,
        delete_module=106, swapon=224, swapoff=225, reboot=142, acct=89, syslog=116, quotactl=60,
        settimeofday=170, clock_settime=112, adjtimex=171, clock_adjtime=266, open_by_handle_at=265,
        name_to_handle_at=264, lookup_dcookie=18, vhangup=58),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported() -> bool:
    return platform.machine() in SYSCALLS


def program(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bwrap reads it (struct sock_filter[])."""
    table = SYSCALLS[machine or platform.machine()]
    denied = [table[name] for name in DENIED if name in table]
    # Layout: [load arch][arch check][load nr][x32 check][one jeq per call][tail], and the
    # tail is [allow][clone: load flags, jset, allow][EPERM][ENOSYS][EOPNOTSUPP]; jumps are relative.
    body: list[tuple[int, int, str | None]] = [(BPF_LD_W_ABS, OFFSET_NR, None)]
    if table["audit_arch"] == 0xC000003E:
        body.append((BPF_JGE_K, X32_SYSCALL_BIT, "eperm"))
    body += [(BPF_JEQ_K, nr, "eperm") for nr in denied]
    body += [(BPF_JEQ_K, table["clone"], "clone"), (BPF_JEQ_K, table["clone3"], "enosys"),
             (BPF_JEQ_K, table["fallocate"], "eopnotsupp")]
    tail_start = 2 + len(body)
    target = {"clone": tail_start + 1, "eperm": tail_start + 4, "enosys": tail_start + 5,
              "eopnotsupp": tail_start + 6}
    out = [_insn(BPF_LD_W_ABS, OFFSET_ARCH),
           _insn(BPF_JEQ_K, table["audit_arch"], 0, target["eperm"] - 2)]  # foreign ABI: EPERM
    for here, (code, k, label) in enumerate(body, start=2):
        out.append(_insn(code, k, target[label] - here - 1 if label else 0, 0))
    out += [_insn(BPF_RET_K, RET_ALLOW),
            _insn(BPF_LD_W_ABS, OFFSET_ARG0_LOW),
            _insn(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, 1, 0),  # any namespace flag: EPERM
            _insn(BPF_RET_K, RET_ALLOW),
            _insn(BPF_RET_K, RET_ERRNO | errno.EPERM),
            _insn(BPF_RET_K, RET_ERRNO | errno.ENOSYS),
            _insn(BPF_RET_K, RET_ERRNO | errno.EOPNOTSUPP)]
    return b"".join(out)


def program_fd() -> int:
    """A file descriptor holding the filter, at offset 0, for ``bwrap --seccomp FD``."""
    fd = os.memfd_create("sotalab-seccomp", 0)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
