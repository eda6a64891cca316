"""The guide reader behind tests/integration/test_walkthrough.py: which blocks run, in which step."""

from __future__ import annotations

from tests.support.walkthrough import Step, fenced_blocks, steps

GUIDE = """# Guide

## 0. Start

```sh
make up
```

Some prose with `inline code`.

```sh
export A=1
```

## 1. Look

```console
$ curl -fsS "$URL/a" \\
    --data-urlencode 'q=門司'
{"records": []}
$ echo done
done
```

```python
print("not a shell block")
```

## 2. Prose only
"""


def test_shell_blocks_are_grouped_by_section_in_order() -> None:
    assert steps(GUIDE) == [
        Step("0. Start", ("make up", "export A=1")),
        Step("1. Look", ("curl -fsS \"$URL/a\" \\\n    --data-urlencode 'q=門司'\necho done",)),
    ]


def test_every_fenced_block_is_found_with_its_language() -> None:
    assert [(b.section, b.language) for b in fenced_blocks(GUIDE)] == [
        ("0. Start", "sh"),
        ("0. Start", "sh"),
        ("1. Look", "console"),
        ("1. Look", "python"),
    ]
