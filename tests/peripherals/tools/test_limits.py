"""Process-limit mechanism discovery and the per-command cgroup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.limits import ProcessLimiter, _own_cgroup, _pids_mounts

from .conftest import Call

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,cpu,pids
"""


def test_pids_hierarchies_are_found_in_mountinfo_v1_first() -> None:
    mounts = _pids_mounts(HYBRID)
    assert [(m.version, str(m.mountpoint), m.root) for m in mounts] == [
        (1, "/sys/fs/cgroup/pids", "/docker/abc"),
        (1, "/mnt/with space", "/"),
        (2, "/sys/fs/cgroup/unified", "/"),
    ]


def test_our_own_cgroup_is_read_per_version() -> None:
    text = "9:name=systemd:/\n8:pids:/docker/abc/inner\n0::/user.slice/x\n"
    assert _own_cgroup(1, text) == "/docker/abc/inner"
    assert _own_cgroup(2, text) == "/user.slice/x"


def test_without_cgroups_the_fallback_depends_on_being_root() -> None:
    limiter = ProcessLimiter(use_cgroups=False)
    # Root ignores RLIMIT_NPROC, so for root there is no fallback.
    assert limiter.mechanism == ("none" if os.geteuid() == 0 else "rlimit")


def test_a_pids_limit_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        ProcessLimiter(pids_max=1)


async def test_each_command_runs_in_its_own_pids_cgroup_removed_afterwards(
    backend: RealBackend, call: Call, ctx: ToolContext
) -> None:
    if not backend.limiter.mechanism.startswith("cgroup"):
        pytest.skip(f"no pids cgroup on this machine (process limit: {backend.limiter.mechanism})")
    out = (await call("bash", ["cat /proc/self/cgroup"], ctx))["out"]
    line = next(ln for ln in out.splitlines() if "pids" in ln.split(":")[1] or ln.startswith("0::"))
    path = line.split(":", 2)[2]
    assert "/futon/" in path
    name = path.rsplit("/", 1)[1]
    assert not any(Path(p).name == name for p in _cgroup_dirs(backend))


def _cgroup_dirs(backend: RealBackend) -> list[str]:
    base = backend.limiter.cgroup_base
    return [str(p) for p in base.iterdir() if p.is_dir()] if base else []
