"""The landing page at ``/`` and ``/favicon.ico`` (issue 15 item 8): no 404 behind "View site" or the icon."""

from __future__ import annotations

import struct
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client

from common.views import FAVICON

pytestmark = pytest.mark.django_db


class Links(HTMLParser):
    """Every ``<a href>`` of a page with its text, and the stylesheets and scripts it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.stylesheets: list[str] = []
        self.scripts: list[str] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href") is not None:
            self._href, self._text = found["href"], []
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.stylesheets.append(found["href"] or "")
        elif tag == "script":
            self.scripts.append(found.get("src") or "inline")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None

    def href(self, text: str) -> str:
        """The target of the (first) link whose text is ``text``, case-insensitively."""
        return next(href for label, href in self.links if label.lower() == text.lower())


def parse(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("operator", email=None, password=None))
    return client


def test_the_landing_page_links_the_admin_spend_schema_and_health(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response.templates[0].name == "common/landing.html"
    page = parse(response.content.decode())
    assert page.href("Admin") == "/admin/"
    assert page.href("Spend") == "/admin/spend/"
    assert page.href("API schema") == "/api/schema/"
    assert page.href("Health") == "/health"
    assert page.href("readiness") == "/health/ready"


def test_the_landing_page_wears_the_admins_light_and_dark_look_and_needs_no_script(client: Client) -> None:
    html = client.get("/").content.decode()
    page = parse(html)
    # The admin's stylesheets: base.css (light) and dark_mode.css (dark, by the system's preference).
    assert any(href.endswith("admin/css/base.css") for href in page.stylesheets)
    assert any(href.endswith("admin/css/dark_mode.css") for href in page.stylesheets)
    # The words and links are in the HTML itself; the only script is the admin's theme toggle.
    assert all(src.endswith("admin/js/theme.js") for src in page.scripts), page.scripts
    assert "turns a song and a prompt into a music video" in html
    # An anonymous visitor sees no admin user tools, and no sidebar of admin apps.
    assert "Log out" not in html
    assert 'id="nav-sidebar"' not in html


@pytest.mark.parametrize("label", ["Admin", "API schema", "Health", "readiness"])
def test_each_landing_link_answers(staff: Client, label: str) -> None:
    href = parse(staff.get("/").content.decode()).href(label)
    response = staff.get(href)
    # /health/ready may say 503 when a service is down; what matters is that the page exists.
    assert response.status_code in (200, 503), (href, response.status_code)


def test_the_spend_link_answers(staff: Client) -> None:
    href = parse(staff.get("/").content.decode()).href("Spend")
    assert staff.get(href).status_code == 200


def test_the_admins_view_site_link_leads_to_the_landing_page(staff: Client) -> None:
    admin_index = staff.get("/admin/")
    assert admin_index.status_code == 200
    href = parse(admin_index.content.decode()).href("View site")
    response = staff.get(href)
    assert response.status_code == 200
    assert response.templates[0].name == "common/landing.html"
    assert "Log out" in response.content.decode()  # a signed-in operator keeps the admin's user tools


def test_the_landing_page_only_answers_get_and_head(client: Client) -> None:
    assert client.head("/").status_code == 200
    for method in (client.post, client.put, client.delete):
        assert method("/").status_code == 405


def test_the_favicon_is_an_icon_not_a_404(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert "max-age=86400" in response["Cache-Control"]
    body = response.getvalue()
    assert body == FAVICON.read_bytes()
    reserved, kind, count = struct.unpack("<HHH", body[:6])
    assert (reserved, kind) == (0, 1)  # an ICO file
    sizes = []
    for n in range(count):
        width, height, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", body[6 + 16 * n : 22 + 16 * n])
        assert body[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + length <= len(body)
        sizes.append((width, height))
    assert sizes == [(32, 32), (16, 16)]
    assert client.post("/favicon.ico").status_code == 405
