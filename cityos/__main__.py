"""``python -m cityos``: the same as the ``cityos`` console script."""

from cityos.cli.main import main

main()
