"""Every read (the HackSoft "selectors"), one room per concern.

Jobs and stages (:mod:`.jobs`), stage timings (:mod:`.estimates`), money (:mod:`.costs`,
:mod:`.reconcile`), spend across jobs (:mod:`.spend`).
Import from here (``from common.selectors import job_get``); the submodules are the rooms. Every
function is keyword-only, typed and runs inside :func:`common.db.boundary`, with an async twin.
``parse_job_id`` / ``parse_user_id`` live in :mod:`common.ids` and are re-exported here for the
callers that imported them from this module.
"""

from __future__ import annotations

from common.ids import parse_job_id, parse_user_id
from common.selectors import costs, estimates, jobs, reconcile, spend
from common.selectors.costs import *  # noqa: F403 - the package re-exports its rooms
from common.selectors.estimates import *  # noqa: F403
from common.selectors.jobs import *  # noqa: F403
from common.selectors.reconcile import *  # noqa: F403
from common.selectors.spend import *  # noqa: F403

__all__ = ["parse_job_id", "parse_user_id"]
__all__ += costs.__all__
__all__ += estimates.__all__
__all__ += jobs.__all__
__all__ += reconcile.__all__
__all__ += spend.__all__
