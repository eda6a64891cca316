"""Accessibility checks with axe-core, run inside the real page: the npm copy the project pins
(``web/node_modules/axe-core``, found through ``Settings().web_assets_dir``) is evaluated from disk,
so no request leaves the machine.

The rules are those tagged for WCAG 2.0, 2.1 and 2.2 at levels A and AA, the level Japanese public
bodies aim for (JIS X 8341-3:2016 is WCAG 2.0 AA). Serious and critical violations fail a test;
moderate and minor ones are reported by ``violations`` for whoever wants to see them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from cityos.kernel.settings import Settings

WCAG_AA_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa")
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

_RUN = """async ([include, tags]) => {
  const context = include ? { include: include } : document;
  const result = await axe.run(context, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    targets: v.nodes.map(n => n.target.join(" ")),
  }));
}"""


def axe_script() -> Path:
    path = Settings().web_assets_dir / "axe-core" / "axe.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `make env` (npm ci --prefix web)")
    return path


def violations(page: Page, *, include: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's WCAG A/AA violations on ``page`` (only inside the ``include`` selectors when given):
    each with its rule ``id``, ``impact``, ``help`` and the ``targets`` (CSS selectors) it found."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol rather than added as a <script>: the page's own
        # content security policy (no inline script) stays in force for everything else.
        page.evaluate(axe_script().read_text(encoding="utf-8") + "\n;void 0")
    found: list[dict[str, Any]] = page.evaluate(_RUN, [include, list(WCAG_AA_TAGS)])
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """One readable block per violation: rule, impact, what it asks for, where (first targets)."""
    lines = []
    for violation in found:
        targets = violation["targets"]
        shown = ", ".join(targets[:5]) + (f" (+{len(targets) - 5} more)" if len(targets) > 5 else "")
        lines.append(f"- {violation['id']} [{violation['impact']}]: {violation['help']}\n    at {shown}")
    return "\n".join(lines)


def serious(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in found if v["impact"] in BLOCKING_IMPACTS]


def assert_no_serious(page: Page, name: str, *, include: list[str] | None = None) -> list[dict[str, Any]]:
    """Fail with a readable list when axe finds a serious or critical violation on ``page``; returns
    every violation found (the milder ones too) for the caller to report."""
    found = violations(page, include=include)
    blocking = serious(found)
    assert not blocking, (
        f"{name} ({page.url}): {len(blocking)} serious/critical accessibility violations:\n{describe(blocking)}"
    )
    return found
