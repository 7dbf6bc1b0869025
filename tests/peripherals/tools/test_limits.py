"""Process-limit mechanism discovery and the per-command cgroup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.limits import ProcessLimiter, _own_cgroup, _pids_mounts

from .conftest import Call, make_ctx

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


# ------------------------------------------------------------------ memory

ALLOCATE = "python3 -c \"b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('allocated')\""


def test_a_memory_limit_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        ProcessLimiter(memory_max=1024 * 1024)


def test_without_cgroups_memory_falls_back_to_rlimit_even_for_root() -> None:
    assert ProcessLimiter(use_cgroups=False).memory_mechanism == "rlimit"
    assert ProcessLimiter(use_cgroups=False, use_rlimit=False).memory_mechanism == "none"


@pytest.mark.parametrize("use_cgroups", [True, False], ids=["cgroup", "rlimit"])
async def test_a_command_cannot_use_more_than_its_memory(
    call: Call, ws: Path, use_cgroups: bool
) -> None:
    """400 MiB under a 128 MiB limit: the allocation fails (MemoryError
    under RLIMIT_AS, the OOM killer in the cgroup); the daemon is fine."""
    backend = RealBackend(limiter=ProcessLimiter(pids_max=64, use_cgroups=use_cgroups))
    ctx = make_ctx(ws, memory_max_bytes=128 * 1024 * 1024)
    result = await call("bash", [ALLOCATE, {"timeout_ms": 20_000}], ctx, using=backend)
    assert "allocated" not in result["out"]
    assert result["exit"] != 0 and not result["timed_out"]
    # A smaller allocation under the same limit works: the limit is the
    # configured one, not a broken sandbox.
    small = ALLOCATE.replace("400", "16")
    assert (await call("bash", [small], ctx, using=backend))["out"] == "allocated\n"


async def test_the_private_tmp_is_bounded_by_the_memory_limit(call: Call, ws: Path) -> None:
    ctx = make_ctx(ws, memory_max_bytes=64 * 1024 * 1024)
    result = await call(
        "bash", ["head -c 200M /dev/zero > /tmp/big; echo $?", {"timeout_ms": 20_000}], ctx
    )
    assert result["out"].strip() != "0"


async def test_each_command_runs_in_its_own_memory_cgroup_removed_afterwards(
    backend: RealBackend, call: Call, ctx: ToolContext
) -> None:
    limiter = backend.limiter
    if limiter.memory_mechanism != "cgroup-v1":
        pytest.skip(f"no separate v1 memory cgroup here ({limiter.memory_mechanism})")
    out = (await call("bash", ["cat /proc/self/cgroup"], ctx))["out"]
    line = next(ln for ln in out.splitlines() if "memory" in ln.split(":")[1])
    name = line.split(":", 2)[2].rsplit("/", 1)[1]
    base = limiter.memory_cgroup_base
    assert base is not None and "/futon/" in line
    assert not (base / name).exists()
