"""The action hot path (issue 19): one resolution per path per action, the
kernel's answer for it, and the walls unchanged.

- scope resolves a path with one ``O_PATH`` open and ``/proc/self/fd``
  where it can; the answer is ``os.path.realpath``'s in every case;
- the file tools use the dispatcher's resolution (``ctx.resolved``)
  instead of resolving again, and still refuse one outside the workspace;
- every hidden directory is looked for on the way up from an opened
  object, wherever it is: one outside the workspace costs nothing and
  one inside is still refused;
- a step's args and result are kept inline or capped exactly as before,
  small ones without being serialised to find out.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from futon.peripherals import scope
from futon.peripherals.session import EVIDENCE_CAP, _capped, _surely_small
from futon.peripherals.tools import ToolContext, beneath, files
from futon.protocol.errors import PermissionDenied

from .conftest import Call

# ------------------------------------------------------------------ one resolution, the kernel's


def test_the_kernel_resolution_is_realpaths(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "a").mkdir()
    (root / "a" / "f").write_text("x")
    (root / "rel").symlink_to("a")
    (root / "abs").symlink_to(root / "a" / "f")
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")  # O_PATH neither opens nor blocks on it
    cases = [
        "a",
        "a/f",
        "rel",
        "rel/f",
        "rel/../a/f",
        "abs",
        "dangling",
        "loop",
        "a/missing",
        "a/f/x",
        ".",
        "rel/..",
        "fifo",
    ]
    for case in cases:
        path = f"{root}/{case}"
        assert scope._realpath(path, case) == os.path.realpath(path), case
    # The kernel answers the existing ones itself; the rest fall back.
    assert scope._kernel_realpath(f"{root}/rel/f") == f"{root}/a/f"
    assert scope._kernel_realpath(f"{root}/dangling") is None
    assert scope._kernel_realpath(f"{root}/loop") is None


def test_resolution_still_refuses_a_way_out(tmp_path: Path) -> None:
    ws = (tmp_path / "ws").resolve()
    ws.mkdir()
    (tmp_path / "outside.txt").write_text("no")
    (ws / "out").symlink_to(tmp_path / "outside.txt")
    for raw in ("../outside.txt", "out", str(tmp_path / "outside.txt")):
        with pytest.raises(PermissionDenied) as refused:
            scope.resolve_in_workspace(ws, raw)
        assert refused.value.code == "out-of-scope"


# ------------------------------------------------------------------ the tools use the dispatcher's resolution


async def test_a_file_tool_uses_the_resolution_it_is_given(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    # "alias.md" names no file: only the dispatcher's resolution, which the
    # session hands over, says it stands for README.md.
    given = dataclasses.replace(ctx, resolved={"alias.md": ws / "README.md"})
    assert await call("read", ["alias.md"], given) == "hello\nworld\n"


async def test_a_resolution_outside_the_workspace_is_refused_by_the_tool(
    call: Call, ws: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    for tool, args in (("read", ["x"]), ("write", ["x", "pwned"]), ("grep", ["o", "x"])):
        given = dataclasses.replace(ctx, resolved={"x": secret.resolve()})
        with pytest.raises(PermissionDenied) as refused:
            await call(tool, args, given)
        assert refused.value.code == "out-of-scope"
    assert secret.read_text() == "outside\n"


def test_relative_paths_are_cut_from_the_workspace(ws: Path, ctx: ToolContext) -> None:
    assert files._rel(ctx, ws) == "."
    assert files._rel(ctx, ws / "src" / "app.py") == "src/app.py"
    with pytest.raises(ValueError):
        files._rel(ctx, Path(str(ws) + "-sibling") / "x")


# ------------------------------------------------------------------ hidden directories, wherever they are


def test_a_hidden_directory_outside_the_workspace_leaves_opens_alone(
    ws: Path, tmp_path: Path
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    with beneath.Beneath(ws, (data,)) as root:
        assert root.read_bytes("src/pkg/mod.py", 100) == b"import os\nVALUE = 1\n"


def test_a_hidden_directory_inside_the_workspace_is_refused_below_it(ws: Path) -> None:
    data = ws / "docs"
    with beneath.Beneath(ws, (data,)) as root, pytest.raises(PermissionDenied):
        root.read_bytes("docs/guide.md", 100)


# ------------------------------------------------------------------ step bodies: inline or capped, as before


def test_small_values_stay_inline_without_a_copy() -> None:
    for value in (
        ["README.md"],
        "hello\n",
        {"exit": 0, "out": "ok", "err": ""},
        None,
        3.5,
        [1, [2, {"k": True}]],
    ):
        assert _capped(value) is value


def test_large_values_are_capped_as_before() -> None:
    big = "x" * (EVIDENCE_CAP + 1)
    capped = _capped(big)
    assert capped["truncated"] is True and capped["bytes"] == EVIDENCE_CAP + 3  # with its quotes
    # Characters that escape to six bytes each: the bound says "serialise",
    # and the serialised size decides.
    control = "\x01" * (EVIDENCE_CAP // 6 + 1)
    assert _surely_small(control, EVIDENCE_CAP) is False
    assert _capped(control)["truncated"] is True


def test_values_too_many_to_judge_by_shape_are_serialised_to_decide() -> None:
    many = ["a"] * 200  # small, but more items than the shape check looks at
    assert _surely_small(many, EVIDENCE_CAP) is False
    assert _capped(many) is many
    odd = {1: "a non-string key"}
    assert _surely_small(odd, EVIDENCE_CAP) is False
    assert _capped(odd) is odd
