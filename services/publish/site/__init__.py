"""The catalog site: server-rendered pages (Japanese by default, English under ``/en``) over the
same read model and access rules as the open-data API."""
