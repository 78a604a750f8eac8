"""The dashboard's server side over real HTTP: pages, signing in and out, cookies, the security
headers and the static files."""

from __future__ import annotations

import logging
import urllib.parse
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, SERVER, post, serving

from navarch.api.ui.assets import load_assets
from navarch.api.ui.responses import CONTENT_SECURITY_POLICY
from navarch.config import ServerConfig

VIEWER_TOKEN = "viewer-" + "v" * 40
TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN, "viewer_token": VIEWER_TOKEN}


def assert_secured(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def sign_in(
    client: httpx.AsyncClient, token: str, next_page: str = "/ui/", **headers: str
) -> httpx.Response:
    """POSTs the sign-in form as a browser does; the client keeps no cookie from it."""
    response = await client.post(
        "/ui/signin", data={"token": token, "next": next_page}, headers=headers
    )
    client.cookies.clear()
    return response


def session_of(response: httpx.Response) -> str:
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    assert name == "navarch_session"
    return rest.split(";")[0]


async def test_pages_send_a_caller_without_a_session_to_sign_in(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        bare = await client.get("/ui")
        assert (bare.status_code, bare.headers["location"]) == (303, "/ui/")
        for path, query in [
            ("/ui/", ""),
            ("/ui/nodes", ""),
            ("/ui/nodes/gpu-node-7", "status=active&sort=pool"),
            ("/ui/pools", ""),
            ("/ui/pools/training", ""),
            ("/ui/nodes/rack 4 node 2", ""),
            ("/ui/remediations", ""),
        ]:
            target = path + ("?" + query if query else "")
            response = await client.get(target)
            assert response.status_code == 303, path
            # The page asked for, as the browser sent it (percent-encoded), is one query value.
            sent = urllib.parse.quote(path) + ("?" + query if query else "")
            assert response.headers["location"] == "/ui/signin?next=" + urllib.parse.quote(
                sent, safe=""
            )
            assert "set-cookie" not in response.headers
            assert response.headers["cache-control"] == "no-store"
            assert_secured(response)
        signin = await client.get("/ui/signin")
        assert signin.status_code == 200
        assert signin.headers["content-type"] == "text/html; charset=utf-8"
        assert 'action="/ui/signin"' in signin.text
        assert_secured(signin)
        for path, status in [
            ("/ui/session", 401),
            ("/ui/stream", 401),
            ("/ui/nodes/a/b", 404),
            ("/ui/settings", 404),
        ]:
            response = await client.get(path)
            assert response.status_code == status, path
            assert_secured(response)
        session = await client.get("/ui/session")
        assert session.json() == {
            "code": "unauthenticated",
            "message": "not signed in; sign in at /ui/signin",
        }
        wrong_method = await client.post("/ui/nodes")
        assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET")


async def test_signing_in_with_the_admin_token_opens_the_pages_and_the_api(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        response = await sign_in(client, ADMIN_TOKEN, "/ui/nodes/n1?tab=gpus")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/nodes/n1?tab=gpus"
        cookie = response.headers["set-cookie"]
        session_id = session_of(response)
        assert len(session_id) == 43  # 256 random bits in URL-safe base64
        flags = [flag.strip() for flag in cookie.split(";")[1:]]
        assert sorted(flags) == ["HttpOnly", "Path=/", "SameSite=Strict"]
        jar = {"Cookie": f"navarch_session={session_id}"}

        page = await client.get("/ui/nodes/n1", headers=jar)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-store"
        assert_secured(page)
        assert '<script type="module" src="/ui/static/' in page.text

        about = await client.get("/ui/session", headers=jar)
        assert about.status_code == 200
        assert about.headers["cache-control"] == "no-store"
        assert about.json()["role"] == "admin"
        csrf = about.json()["csrf"]
        assert len(csrf) == 43 and csrf != session_id

        with_csrf = {**jar, "X-Navarch-CSRF": csrf}
        registered = await post(client, "RegisterNode", {"nodeId": "n1"}, headers=with_csrf)
        assert registered.status_code == 200, registered.text
        cordon = {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "reason": "from the dashboard"}
        issued = await post(client, "IssueCommand", cordon, headers=with_csrf)
        assert issued.status_code == 200, issued.text
        node = await post(client, "GetNode", {"nodeId": "n1"}, headers=with_csrf)
        assert node.json()["node"]["status"] == "NODE_STATUS_CORDONED"

        again = await sign_in(client, ADMIN_TOKEN)
        assert session_of(again) != session_id


async def test_a_wrong_token_goes_back_to_sign_in_without_a_cookie(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-token-" + "x" * 30
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        for token, next_page, location in [
            (wrong, "/ui/", "/ui/signin?error=1"),
            (wrong, "/ui/pools", "/ui/signin?error=1&next=%2Fui%2Fpools"),
            # The join token admits daemons, not people.
            (JOIN_TOKEN, "/ui/", "/ui/signin?error=1"),
            ("", "/ui/", "/ui/signin?error=1"),
        ]:
            response = await sign_in(client, token, next_page)
            assert response.status_code == 303
            assert response.headers["location"] == location
            assert "set-cookie" not in response.headers
    assert wrong not in caplog.text
    assert JOIN_TOKEN not in caplog.text
    assert "dashboard sign-in refused" in caplog.text


async def test_sign_in_returns_only_to_a_dashboard_page(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        for next_page, location in [
            ("/ui/remediations", "/ui/remediations"),
            ("https://elsewhere.example/ui/", "/ui/"),
            ("//elsewhere.example/ui/", "/ui/"),
            ("/ui/\\\\elsewhere.example", "/ui/"),
            ("/metrics", "/ui/"),
            ("/ui/nodes with space", "/ui/"),
            ("/ui/" + "a" * 3000, "/ui/"),
        ]:
            response = await sign_in(client, VIEWER_TOKEN, next_page)
            assert response.headers["location"] == location, next_page


async def test_sign_in_refuses_bad_forms_and_forms_of_other_sites(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        as_json = await client.post("/ui/signin", json={"token": ADMIN_TOKEN})
        assert as_json.status_code == 415
        assert as_json.json()["message"] == "send the form as application/x-www-form-urlencoded"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        huge = await client.post("/ui/signin", content=b"token=" + b"a" * 9000, headers=form)
        assert huge.status_code == 413
        twice = await client.post(
            "/ui/signin", content=b"token=a&token=" + ADMIN_TOKEN.encode(), headers=form
        )
        assert (twice.status_code, twice.json()["message"]) == (
            400,
            "form: token: expected one value",
        )
        binary = await client.post("/ui/signin", content=b"token=\xff", headers=form)
        assert binary.status_code == 400
        host = client.base_url.netloc.decode()
        for headers, status in [
            ({"Origin": "https://elsewhere.example"}, 403),
            ({"Sec-Fetch-Site": "cross-site", "Origin": f"http://{host}"}, 403),
            ({"Sec-Fetch-Site": "same-site"}, 403),
            ({"Origin": f"http://{host}"}, 303),
            # What Chromium sends for the dashboard's own form under no-referrer.
            ({"Sec-Fetch-Site": "same-origin", "Origin": "null"}, 303),
            ({"Origin": "null"}, 303),
        ]:
            response = await sign_in(client, ADMIN_TOKEN, **headers)
            assert response.status_code == status, headers
            assert ("set-cookie" in response.headers) == (status == 303)
        elsewhere = await sign_in(client, ADMIN_TOKEN, Origin="https://elsewhere.example")
        for response in (as_json, huge, twice, elsewhere):
            assert_secured(response)


async def test_signing_out_ends_the_session(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        session_id = session_of(await sign_in(client, ADMIN_TOKEN))
        jar = {"Cookie": f"navarch_session={session_id}"}
        csrf = (await client.get("/ui/session", headers=jar)).json()["csrf"]

        forged = await client.post("/ui/signout", data={"csrf": "guess"}, headers=jar)
        assert forged.status_code == 403
        assert (await client.get("/ui/", headers=jar)).status_code == 200

        out = await client.post("/ui/signout", data={"csrf": csrf}, headers=jar)
        client.cookies.clear()
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/signin"
        assert out.headers["set-cookie"].startswith("navarch_session=; Path=/; Max-Age=0")

        page = await client.get("/ui/", headers=jar)
        assert page.status_code == 303
        call = await post(client, "ListNodes", {}, headers={**jar, "X-Navarch-CSRF": csrf})
        assert call.status_code == 401
        assert call.json()["message"].startswith("the dashboard session has ended")


async def test_api_calls_with_the_cookie_need_the_csrf_header(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        session_id = session_of(await sign_in(client, ADMIN_TOKEN))
        jar = {"Cookie": f"theme=dark; navarch_session={session_id}"}
        csrf = (await client.get("/ui/session", headers=jar)).json()["csrf"]
        message = (
            "a call with the session cookie needs the X-Navarch-CSRF header set to the csrf "
            "value of GET /ui/session"
        )
        for headers in (jar, {**jar, "X-Navarch-CSRF": "x" * 43}):
            refused = await post(client, "ListNodes", {}, headers=headers)
            assert refused.status_code == 401
            assert refused.json() == {"code": "unauthenticated", "message": message}
        forged = await post(
            client,
            "ListNodes",
            {},
            headers={"Cookie": "navarch_session=forged", "X-Navarch-CSRF": csrf},
        )
        assert forged.status_code == 401
        assert forged.json()["message"].startswith("the dashboard session has ended")
        allowed = await post(client, "ListNodes", {}, headers={**jar, "X-Navarch-CSRF": csrf})
        assert allowed.status_code == 200
        # A bearer token speaks for itself; the cookie beside it is not looked at.
        bearer = await post(client, "ListNodes", {}, token=ADMIN_TOKEN, headers=jar)
        assert bearer.status_code == 200


async def test_the_cookie_is_secure_when_browsers_reach_the_server_over_https(
    tmp_path: Path,
) -> None:
    server = ServerConfig(
        heartbeat_interval=timedelta(seconds=10), external_url="https://navarch.example"
    )
    async with serving(tmp_path / "navarch.db", server, **TOKENS) as (client, _):
        response = await sign_in(client, VIEWER_TOKEN)
        assert response.status_code == 303
        assert "; Secure" in response.headers["set-cookie"]


async def test_static_files_are_served_by_name_only(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", **TOKENS) as (client, _):
        style = await client.get("/ui/static/style.css")
        assert style.status_code == 200
        assert style.headers["content-type"] == "text/css; charset=utf-8"
        assert style.headers["cache-control"] == "no-cache"
        assert_secured(style)
        etag = style.headers["etag"]
        unchanged = await client.get("/ui/static/style.css", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        script = await client.get("/ui/static/signin.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        for raw in [
            b"/ui/static/../routes.py",
            b"/ui/static/%2e%2e/routes.py",
            b"/ui/static/..%2f..%2fapp.py",
            b"/ui/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
            b"/ui/static//etc/passwd",
            b"/ui/static/",
            b"/ui/static/missing.js",
        ]:
            # httpx would tidy the dots away; the path goes on the wire as written.
            request = client.build_request("GET", "/")
            request.url = request.url.copy_with(raw_path=raw)
            response = await client.send(request)
            assert response.status_code == 404, raw
            assert_secured(response)


def test_only_files_of_known_types_are_assets() -> None:
    assets = load_assets()
    assert {"index.html", "signin.html"} <= assets.keys()
    assert all(not name.endswith(".py") for name in assets)
    assert all(".." not in name.split("/") for name in assets)


async def test_with_auth_off_the_pages_answer_as_admin(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", SERVER) as (client, _):
        page = await client.get("/ui/nodes")
        assert page.status_code == 200
        assert_secured(page)
        assert (await client.get("/ui/session")).json() == {"role": "admin", "csrf": ""}
        signin = await client.get("/ui/signin")
        assert (signin.status_code, signin.headers["location"]) == (303, "/ui/")
