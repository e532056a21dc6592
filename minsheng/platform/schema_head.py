"""Is a service's database already at its migrations' head? Answered without Alembic: most starts find nothing to
migrate, and Alembic (with Mako and Pygments) is ~7 MB of every server's idle RSS (issue 17: ≤ 120 MB). Anything
unexpected — no version table, several heads, a revision not written as a plain string — answers "no", and the
caller runs Alembic as before."""

from __future__ import annotations

import ast
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return ast.literal_eval(node.value) if node.value is not None else None
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(name)


def script_head(migrations_dir: Path) -> str | None:
    """The one head revision of ``migrations_dir/versions``, or None when it is not a single plain one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in (migrations_dir / "versions").glob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            revision, down = _assigned(tree, "revision"), _assigned(tree, "down_revision")
            if not isinstance(revision, str):
                return None
            revisions.add(revision)
            for parent in down if isinstance(down, tuple | list) else [down]:
                if parent is not None:
                    parents.add(str(parent))
    except (OSError, SyntaxError, ValueError, LookupError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def database_at_head(conn: AsyncConnection, service: str, migrations_dir: Path) -> bool:
    """True only when the service's version table holds exactly the scripts' single head."""
    head = script_head(migrations_dir)
    if head is None:
        return False
    table = sa.table(f"alembic_version_{service}", sa.column("version_num"))
    try:
        rows = (await conn.execute(sa.select(table.c.version_num))).scalars().all()
    except sa.exc.DBAPIError:  # no version table yet: a new database
        await conn.rollback()
        return False
    await conn.commit()  # no transaction left holding a lock on the version table while Alembic runs
    return list(rows) == [head]
