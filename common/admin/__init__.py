"""The operator's console in the Django admin: jobs, the cost ledger, and the spend page.

* :mod:`.jobs`: the jobs changelist (budget state filter and bar, user and error columns, dollars)
  and the job page (:mod:`.job_page`: money block, latest charges, readable stage errors);
* :mod:`.costs`: the ledger changelist (row to job links, the filtered rows' sum);
* :mod:`.spend`: the spend page at ``/admin/spend/``, linked from the admin index;
* :mod:`.budget` (ok/near/over), :mod:`.display` (dollars, short ids, bars), :mod:`.export` (CSV).

The admin changes data only through the services (a budget through ``job_set_budget``, actions
through the lifecycle and recovery services).
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

from common.admin.costs import JobCostAdmin
from common.admin.export import CSV_HEADER, export_jobs_csv
from common.admin.jobs import JobAdmin
from common.admin.spend import spend_view

__all__ = ["CSV_HEADER", "JobAdmin", "JobCostAdmin", "export_jobs_csv"]

# The admin index links the spend page (a box above the apps).
admin.site.index_template = "common/admin_index.html"
# No app sidebar: at 1,280 px it takes 300 px from the changelists, which then cut their last columns
# (issue 15); the breadcrumbs and the index (two apps, three models) serve to move around.
admin.site.enable_nav_sidebar = False

_site_urls = admin.site.get_urls


def _urls_with_spend() -> list[URLPattern | URLResolver]:
    """The admin site's URLs with the spend page first: ``/admin/spend/``, named ``admin:spend``.

    Part of the site itself (not of one project's URLconf), so every project that serves
    ``admin.site.urls`` with ``common`` installed has the page, behind the admin's sign-in.
    """
    return [path("spend/", admin.site.admin_view(spend_view), name="spend"), *_site_urls()]


admin.site.get_urls = _urls_with_spend  # type: ignore[method-assign]
