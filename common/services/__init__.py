"""The verbs of the common app: keyword-only, typed service functions named ``<entity>_<action>``.

Import from the submodules (``common.services.jobs``, ``common.services.costs``); this package
imports nothing itself, so loading it never touches the app registry.
"""
