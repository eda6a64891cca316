"""Plain helpers the tests import (builders, paths, process control); pytest fixtures live in the
nearest ``conftest.py`` instead, and test modules never import one another."""
