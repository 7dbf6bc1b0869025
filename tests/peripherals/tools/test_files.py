"""read, glob, grep, edit, write on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from futon.peripherals.tools import ToolContext, files
from futon.protocol.errors import PermissionDenied, ToolError

from .conftest import Call, make_ctx

# ------------------------------------------------------------------ read


async def test_read_returns_the_text(call: Call, ctx: ToolContext) -> None:
    assert await call("read", ["README.md"], ctx) == "hello\nworld\n"


async def test_read_takes_a_range_of_lines(call: Call, ws: Path, ctx: ToolContext) -> None:
    (ws / "lines.txt").write_text("".join(f"{i}\n" for i in range(10)))
    assert await call("read", ["lines.txt", {"offset": 2, "limit": 3}], ctx) == "2\n3\n4\n"
    assert await call("read", ["lines.txt", {"offset": 8}], ctx) == "8\n9\n"
    assert await call("read", ["lines.txt", {"offset": 50}], ctx) == ""


async def test_read_of_a_missing_file_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="no such file"):
        await call("read", ["nope.txt"], ctx)


async def test_read_of_a_directory_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="directory"):
        await call("read", ["src"], ctx)


async def test_read_of_a_fifo_is_refused_without_blocking(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    os.mkfifo(ws / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await call("read", ["pipe"], ctx)


async def test_read_of_a_binary_file_is_a_tool_error(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    (ws / "blob.bin").write_bytes(b"abc\x00def")
    (ws / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ToolError, match="NUL"):
        await call("read", ["blob.bin"], ctx)
    with pytest.raises(ToolError, match="not UTF-8"):
        await call("read", ["latin.txt"], ctx)


async def test_read_over_the_size_cap_is_a_tool_error(call: Call, ws: Path) -> None:
    (ws / "big.txt").write_text("x" * 5000)
    small = make_ctx(ws, read_max_bytes=4096)
    with pytest.raises(ToolError, match="read limit"):
        await call("read", ["big.txt"], small)


async def test_read_through_a_symlink_leaving_the_workspace_is_refused(
    call: Call, ws: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (ws / "leak.txt").symlink_to(outside)
    with pytest.raises(PermissionDenied):
        await call("read", ["leak.txt"], ctx)
    with pytest.raises(PermissionDenied):
        await call("read", ["../outside.txt"], ctx)
    with pytest.raises(PermissionDenied):
        await call("read", [str(outside)], ctx)


# ------------------------------------------------------------------ glob


async def test_glob_double_star_crosses_directories_and_includes_hidden(
    call: Call, ctx: ToolContext
) -> None:
    assert await call("glob", ["**/*.py"], ctx) == ["src/app.py", "src/pkg/mod.py"]
    assert ".hidden" in await call("glob", ["*"], ctx)
    assert await call("glob", ["src/*"], ctx) == ["src/app.py", "src/pkg"]


async def test_glob_with_a_base_returns_workspace_relative_paths(
    call: Call, ctx: ToolContext
) -> None:
    assert await call("glob", ["*.py", "src/pkg"], ctx) == ["src/pkg/mod.py"]
    assert await call("glob", ["**", "src"], ctx) == ["src/app.py", "src/pkg", "src/pkg/mod.py"]


async def test_glob_character_classes_and_question_marks(call: Call, ctx: ToolContext) -> None:
    assert await call("glob", ["src/[a]pp.?y"], ctx) == ["src/app.py"]


async def test_glob_is_capped_at_1000(call: Call, ws: Path, ctx: ToolContext) -> None:
    many = ws / "many"
    many.mkdir()
    for i in range(1100):
        (many / f"f{i:04}.txt").touch()
    found = await call("glob", ["many/*.txt"], ctx)
    assert len(found) == 1000
    assert found == sorted(found) and found[0] == "many/f0000.txt"


async def test_glob_does_not_follow_symlinks_out_of_the_workspace(
    call: Call, ws: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("x = 1\n")
    (ws / "src" / "escape").symlink_to(outside)
    (ws / "src" / "leak.py").symlink_to(outside / "secret.py")
    (ws / "src" / "inner.py").symlink_to(ws / "src" / "app.py")
    found = await call("glob", ["**/*.py"], ctx)
    assert "src/inner.py" in found  # a symlink that stays inside is fine
    assert not any("escape" in p or "leak" in p or "secret" in p for p in found)
    assert "src/escape" not in await call("glob", ["src/*"], ctx)


async def test_glob_does_not_walk_into_directory_symlinks_loops(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    (ws / "src" / "loop").symlink_to(ws / "src")
    found = await call("glob", ["**/mod.py"], ctx)
    assert found == ["src/pkg/mod.py"]


async def test_glob_refuses_absolute_and_parent_patterns(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="relative"):
        await call("glob", ["/etc/*"], ctx)
    with pytest.raises(ToolError, match=r"\.\."):
        await call("glob", ["../*"], ctx)


# ------------------------------------------------------------------ grep


async def test_grep_finds_lines_with_workspace_relative_files(call: Call, ctx: ToolContext) -> None:
    hits = await call("grep", ["add"], ctx)
    assert hits == [
        {"file": "docs/guide.md", "line": 2, "content": "See add()."},
        {"file": "src/app.py", "line": 1, "content": "def add(a, b):"},
    ]


async def test_grep_in_a_file_or_directory_with_options(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    assert await call("grep", ["VALUE", "src/pkg/mod.py"], ctx) == [
        {"file": "src/pkg/mod.py", "line": 2, "content": "VALUE = 1"}
    ]
    assert await call("grep", ["value", "src", {"case_insensitive": True}], ctx) == [
        {"file": "src/pkg/mod.py", "line": 2, "content": "VALUE = 1"}
    ]
    assert await call("grep", ["value", "src"], ctx) == []
    (ws / "many.txt").write_text("hit\n" * 20)
    assert len(await call("grep", ["hit", "many.txt", {"max_matches": 5}], ctx)) == 5


async def test_grep_caps_long_lines_and_skips_binary_files(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    (ws / "long.txt").write_text("needle" + "x" * 2000 + "\n")
    (ws / "blob.bin").write_bytes(b"needle\x00\x01\x02")
    hits = await call("grep", ["needle"], ctx)
    assert [h["file"] for h in hits] == ["long.txt"]
    assert len(hits[0]["content"]) == 500


async def test_grep_does_not_follow_symlinks_out_of_the_workspace(
    call: Call, ws: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("needle\n")
    (ws / "escape").symlink_to(outside)
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    assert await call("grep", ["needle"], ctx) == []


async def test_grep_with_a_bad_regex_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="regular expression"):
        await call("grep", ["(unclosed"], ctx)


async def test_grep_of_a_missing_path_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="no such"):
        await call("grep", ["x", "missing"], ctx)


async def test_grep_refuses_what_re2_cannot_run_and_says_why(call: Call, ctx: ToolContext) -> None:
    for pattern in (r"(a)\1", "a(?=b)", "(?<!a)b"):
        with pytest.raises(ToolError, match=r"RE2.*backreferences or lookaround"):
            await call("grep", [pattern], ctx)


async def test_grep_runs_backtracking_patterns_in_linear_time(call: Call, ws: Path, ctx: ToolContext) -> None:
    # With a backtracking engine each of these takes longer than the age of
    # the universe on this line; RE2 answers at once.
    (ws / "aaa.txt").write_text("a" * 5000 + "\n")
    assert await call("grep", ["(a|aa)+c", "aaa.txt"], ctx) == []
    assert [h["line"] for h in await call("grep", ["^(a+)+$", "aaa.txt"], ctx)] == [1]


async def test_grep_searches_only_the_head_of_a_huge_line_and_counts_lines_on(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    head = files.GREP_LINE_BYTES
    (ws / "wide.txt").write_bytes(b"start" + b"x" * (3 * head) + b"late\nnext line\n")
    assert [h["line"] for h in await call("grep", ["start", "wide.txt"], ctx)] == [1]
    assert await call("grep", ["late", "wide.txt"], ctx) == []  # past the head: not searched
    assert await call("grep", ["next", "wide.txt"], ctx) == [
        {"file": "wide.txt", "line": 2, "content": "next line"}
    ]


async def test_grep_over_its_byte_budget_returns_what_it_found_and_says_so(
    call: Call, ws: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "GREP_MAX_BYTES", 1000)
    (ws / "many.txt").write_text("hit\n" * 1000)
    hits = await call("grep", ["hit", "many.txt"], ctx)
    assert hits[-1] == {"truncated": "partial results: stopped after reading 1000 bytes"}
    assert 0 < len(hits) - 1 <= 251
    assert all(h == {"file": "many.txt", "line": i + 1, "content": "hit"} for i, h in enumerate(hits[:-1]))


async def test_grep_past_its_deadline_returns_what_it_found_and_says_so(call: Call, ws: Path) -> None:
    (ws / "many.txt").write_text("hit\n" * 10)
    expired = make_ctx(ws, timeout_s=1e-9)
    hits = await call("grep", ["hit", "many.txt"], expired)
    assert hits[-1] == {"truncated": "partial results: stopped at the time limit (tools.timeout_s)"}


# ------------------------------------------------------------------ edit


async def test_edit_replaces_the_single_occurrence(call: Call, ws: Path, ctx: ToolContext) -> None:
    result = await call("edit", ["src/app.py", "a - b", "a + b"], ctx)
    assert result == {"file": "src/app.py", "replacements": 1}
    assert (ws / "src" / "app.py").read_text() == "def add(a, b):\n    return a + b\n"


async def test_edit_of_absent_text_says_not_found(call: Call, ws: Path, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="not found") as info:
        await call("edit", ["src/app.py", "a * b", "a + b"], ctx)
    assert info.value.context["occurrences"] == 0


async def test_edit_of_ambiguous_text_says_how_many_and_changes_nothing(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    before = (ws / "src" / "app.py").read_text()
    with pytest.raises(ToolError, match="2 times"):
        await call("edit", ["src/app.py", "b", "z"], ctx)
    assert (ws / "src" / "app.py").read_text() == before


async def test_edit_of_a_missing_file_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="no such file"):
        await call("edit", ["nope.py", "a", "b"], ctx)


# ------------------------------------------------------------------ write


async def test_write_creates_parents_and_counts_bytes(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    result = await call("write", ["new/deep/f.txt", "héllo ☃"], ctx)
    assert result == {"file": "new/deep/f.txt", "bytes": len("héllo ☃".encode())}
    assert (ws / "new" / "deep" / "f.txt").read_text() == "héllo ☃"


async def test_write_replaces_an_existing_file(call: Call, ws: Path, ctx: ToolContext) -> None:
    await call("write", ["README.md", "short"], ctx)
    assert (ws / "README.md").read_text() == "short"


async def test_write_onto_a_directory_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="directory"):
        await call("write", ["src", "x"], ctx)


async def test_write_through_a_symlink_leaving_the_workspace_is_refused(
    call: Call, ws: Path, tmp_path: Path, ctx: ToolContext
) -> None:
    target = tmp_path / "target.txt"
    target.write_text("keep\n")
    (ws / "link.txt").symlink_to(target)
    (ws / "dirlink").symlink_to(tmp_path)
    with pytest.raises(PermissionDenied):
        await call("write", ["link.txt", "x"], ctx)
    with pytest.raises(PermissionDenied):
        await call("write", ["dirlink/new.txt", "x"], ctx)
    assert target.read_text() == "keep\n"
    assert not (tmp_path / "new.txt").exists()
