"""The verbs of the common app: keyword-only, typed service functions named ``<entity>_<action>``.

Import from the submodules: ``jobs`` and ``stages`` (the lifecycle), ``leases`` and ``recovery``
(workers), ``charges``, ``holds``, ``prices`` and ``reconcile`` (money); ``costs`` keeps the seeds'
cost-tracking call forms. This package imports nothing itself, so loading it never touches the app registry.
"""
