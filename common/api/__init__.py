"""The REST API: read-only job status and costs under ``/api/`` (views, authentication, one exception handler).

Modules: ``authentication`` (Supabase JWT), ``exceptions`` (the handler), ``permissions``,
``pagination``, ``throttling``, ``schemas`` (response models), ``views`` and ``urls``.
"""
