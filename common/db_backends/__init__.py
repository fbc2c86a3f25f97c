"""Database backends of the videogen project (``DATABASES[...]["ENGINE"]``)."""
