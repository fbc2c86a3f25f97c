"""The stand-in server behaves like the real Supabase Storage where the project depends on it (DESIGN rule 9).

Raw HTTP requests here, not the project's client, so a regression of the client (for example sending an
unescaped name) would meet the same answers as on the real server.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from common.storage.client import make_supabase_client
from tests.storage import samples
from tests.storage.conftest import SERVICE_KEY
from tests.storage.fake_supabase import PREFIX, FakeSupabase, raw_object_url

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}", "apikey": SERVICE_KEY}


def upload(server: FakeSupabase, raw_path: str, data: bytes = samples.MP4, **headers: str) -> httpx.Response:
    url = raw_object_url(server, "video-clips", raw_path)
    return httpx.post(url, content=data, headers={**AUTH, "content-type": "video/mp4", **headers})


def body(response: httpx.Response) -> dict:
    assert response.status_code == 400
    return response.json()


class TestPathsAndKeys:
    def test_path_is_percent_decoded(self, fake_supabase: FakeSupabase) -> None:
        assert upload(fake_supabase, "p/x%41.mp4").status_code == 200
        assert upload(fake_supabase, "p/a%2Fb.mp4").status_code == 200
        assert sorted(fake_supabase.objects("video-clips")) == ["p/a/b.mp4", "p/xA.mp4"]

    def test_bad_escape(self, fake_supabase: FakeSupabase) -> None:
        response = upload(fake_supabase, "p/bad%ff.mp4")
        assert response.status_code == 400
        assert fake_supabase.objects("video-clips") == {}

    def test_names_in_json_bodies_are_not_decoded(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "p/x%41.mp4")
        response = httpx.request(
            "DELETE", f"{fake_supabase.url}{PREFIX}/object/video-clips", json={"prefixes": ["p/x%41.mp4"]}, headers=AUTH
        )
        assert (response.status_code, response.json()) == (200, [])
        assert list(fake_supabase.objects("video-clips")) == ["p/xA.mp4"]

    def test_storage3_client_aliases_percent_names(self, fake_supabase: FakeSupabase) -> None:
        """The regression the project's own client avoids: storage3 decodes '%41' itself (issue 11 item 1)."""
        bucket = make_supabase_client(fake_supabase.url, SERVICE_KEY).storage.from_("video-clips")
        bucket.upload("p/x%41.mp4", samples.MP4, {"content-type": "video/mp4"})
        assert list(fake_supabase.objects("video-clips")) == ["p/xA.mp4"]
        bucket.remove(["p/x%41.mp4"])
        assert list(fake_supabase.objects("video-clips")) == ["p/xA.mp4"]  # "deleted", still there

    @pytest.mark.parametrize("raw", ["p/%C3%BC.mp4", "p/a%23b.mp4", "p/100%25.mp4", "p/a%7Eb.mp4"])
    def test_invalid_key(self, fake_supabase: FakeSupabase, raw: str) -> None:
        error = body(upload(fake_supabase, raw))
        assert (error["statusCode"], error["code"]) == ("400", "InvalidKey")

    def test_key_length(self, fake_supabase: FakeSupabase) -> None:
        assert upload(fake_supabase, "k" * 1024).status_code == 200
        assert body(upload(fake_supabase, "k" * 1025))["code"] == "InvalidKey"


class TestErrors:
    def test_no_such_bucket(self, fake_supabase: FakeSupabase) -> None:
        url = f"{fake_supabase.url}{PREFIX}/object/info/no-such/a.mp4"
        assert body(httpx.get(url, headers=AUTH)) == {
            "statusCode": "404",
            "code": "NoSuchBucket",
            "error": "NoSuchBucket",
            "message": "Bucket not found",
        }

    def test_duplicate_and_legacy_names(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "a.mp4")
        assert body(upload(fake_supabase, "a.mp4"))["statusCode"] == "409"
        assert upload(fake_supabase, "a.mp4", **{"x-upsert": "true"}).status_code == 200
        fake_supabase.legacy_errors = True
        assert body(upload(fake_supabase, "a.mp4"))["error"] == "Duplicate"

    def test_keys(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "a.mp4")
        wrong = {"Authorization": "Bearer nope", "apikey": "nope"}
        error = body(httpx.get(raw_object_url(fake_supabase, "video-clips", "a.mp4"), headers=wrong))
        assert (error["statusCode"], error["code"], error["message"]) == ("403", "AccessDenied", "invalid signature")
        anon = {"Authorization": f"Bearer {fake_supabase.anon_key}", "apikey": fake_supabase.anon_key}
        assert httpx.get(f"{fake_supabase.url}{PREFIX}/bucket", headers=anon).json() == []
        assert (
            body(httpx.get(raw_object_url(fake_supabase, "video-clips", "a.mp4"), headers=anon))["statusCode"] == "404"
        )
        refused = body(upload(fake_supabase, "b.mp4", **anon))
        assert (refused["statusCode"], refused["code"]) == ("403", "AccessDenied")

    def test_bucket_rows(self, fake_supabase: FakeSupabase) -> None:
        fake_supabase.buckets["video-clips"].public = True
        rows = httpx.get(f"{fake_supabase.url}{PREFIX}/bucket", headers=AUTH).json()
        assert {r["id"]: r["public"] for r in rows}["video-clips"] is True
        assert body(httpx.get(f"{fake_supabase.url}{PREFIX}/bucket/nope", headers=AUTH))["code"] == "NoSuchBucket"


class TestSignedUrls:
    def sign(self, server: FakeSupabase, raw_path: str, seconds: int = 60) -> str:
        url = f"{server.url}{PREFIX}/object/sign/video-clips/{raw_path}"
        return server.url + PREFIX + httpx.post(url, json={"expiresIn": seconds}, headers=AUTH).json()["signedURL"]

    def test_space_is_signed_decoded(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "p/a%20b.mp4")
        signed = self.sign(fake_supabase, "p/a%20b.mp4")
        assert "/p/a b.mp4?token=" in signed  # the server returns the decoded path
        assert httpx.get(signed).content == samples.MP4

    def test_escaped_question_mark_never_verifies(self, fake_supabase: FakeSupabase) -> None:
        """Why the project refuses '?': decodeURI keeps %3F in the token, the GET decodes it."""
        upload(fake_supabase, "p/a%3Fb.mp4")
        assert list(fake_supabase.objects("video-clips")) == ["p/a?b.mp4"]
        signed = self.sign(fake_supabase, "p/a%3Fb.mp4")
        assert body(httpx.get(signed))["code"] == "InvalidSignature"

    def test_expiry(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "a.mp4")
        signed = self.sign(fake_supabase, "a.mp4", seconds=10)
        fake_supabase.clock_offset = 11
        assert body(httpx.get(signed))["message"] == "jwt expired"


class TestTus:
    def create(self, server: FakeSupabase, length: int, name: str = "t.mp4", **headers: str) -> httpx.Response:
        meta = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}"
            for k, v in {"bucketName": "video-clips", "objectName": name, "contentType": "video/mp4"}.items()
        )
        return httpx.post(
            f"{server.url}{PREFIX}/upload/resumable",
            headers={
                **AUTH,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(length),
                "Upload-Metadata": meta,
                **headers,
            },
        )

    def patch(self, location: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
        return httpx.patch(
            location,
            content=data,
            headers={
                **AUTH,
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                **headers,
            },
        )

    def test_protocol(self, fake_supabase: FakeSupabase) -> None:
        created = self.create(fake_supabase, 10)
        assert created.status_code == 201
        location = created.headers["location"]
        assert self.patch(location, 0, b"01234").headers["upload-offset"] == "5"
        head = httpx.head(location, headers={**AUTH, "Tus-Resumable": "1.0.0"})
        assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("5", "10")
        assert fake_supabase.objects("video-clips") == {}  # nothing until the last byte
        assert self.patch(location, 3, b"xxxxx").status_code == 409  # offset conflict
        assert self.patch(location, 5, b"56789", **{"Content-Type": "text/plain"}).status_code == 415
        assert self.patch(location, 5, b"56789").status_code == 204
        assert fake_supabase.objects("video-clips")["t.mp4"].data == b"0123456789"

    def test_errors_are_plain_text_with_the_real_status(self, fake_supabase: FakeSupabase) -> None:
        upload(fake_supabase, "t.mp4")
        duplicate = self.create(fake_supabase, 10)
        assert (duplicate.status_code, duplicate.text) == (409, "The resource already exists")
        assert self.create(fake_supabase, 10, **{"x-upsert": "true"}).status_code == 201
        assert self.create(fake_supabase, 10, name="p/ü.mp4").status_code == 400
        del fake_supabase.buckets["video-clips"]
        missing = self.create(fake_supabase, 10, name="n.mp4")
        assert (missing.status_code, missing.text) == (404, "Bucket not found")
