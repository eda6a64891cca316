"""CityOS Connector shared kernel: settings, events, schemas, Kafka, DB, metrics, errors."""
