"""The schema registry: compatibility between versions, lint, offline references, registration.

Pure parts (``compatibility``, ``lint``, ``references``) take documents and return values; the
stateful parts (``store`` for the database, ``topic`` for the compacted schema topic) are thin.
"""
