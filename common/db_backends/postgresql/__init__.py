"""Django's PostgreSQL backend with a bounded, measured and explained connection-pool wait.

``ENGINE = "common.db_backends.postgresql"``; see :mod:`common.db_backends.postgresql.base`.
"""
