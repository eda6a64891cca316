"""Every CityOS exception, in one flat module. Exceptions mean infrastructure or setup failure;
bad input is a value (``Rejected``), not an exception."""

from __future__ import annotations


class CityOSError(Exception):
    """Base for every CityOS error."""


class SchemaError(CityOSError):
    """A schema or dataset metadata file is invalid."""


class KafkaUnavailable(CityOSError):
    """The Kafka cluster could not be reached or refused an operation."""


class DeliveryFailed(CityOSError):
    """A produced message was not acknowledged; its input offsets must not be committed."""


class CsvImportError(CityOSError):
    """A CSV file cannot be read at all (encoding, quoting or header); row problems are values."""
