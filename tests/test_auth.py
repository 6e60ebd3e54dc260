"""Registration, login, refresh rotation, logout and JWT verification, through HTTP."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import jwt
import orjson

from konfig.db.session import bind_tenant
from konfig.dispatch import Dispatcher
from tests.conftest import PASSWORD, Account, add_user, assert_error, login, register

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


async def test_register_and_login_as_in_the_original_spec(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/auth/register",
        json={"name": "mycompany", "email": "admin@mycompany.com", "password": "SecurePassword123"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["tenant"]["name"] == "mycompany"
    assert body["user"]["role"] == "owner"
    assert "password" not in created.text and "hash" not in created.text

    answer = await client.post(
        "/api/v1/auth/login", json={"email": "admin@mycompany.com", "password": "SecurePassword123"}
    )
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "admin@mycompany.com"
    assert me.json()["tenant_name"] == "mycompany"


async def test_login_with_the_oauth2_password_form(
    client: httpx.AsyncClient, owner: Account
) -> None:
    answer = await client.post(
        "/api/v1/auth/login",
        data={"username": owner.email, "password": PASSWORD, "grant_type": "password"},
    )
    assert answer.status_code == 200
    assert answer.json()["access_token"]


async def test_wrong_password_and_unknown_email_answer_the_same(
    client: httpx.AsyncClient, owner: Account
) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login",
        json={"email": "ghost@nowhere.example.com", "password": "nope-nope-nope"},
    )
    assert_error(wrong, 401, "UNAUTHENTICATED")
    assert_error(unknown, 401, "UNAUTHENTICATED")
    assert wrong.json() == unknown.json()


async def test_duplicate_email_and_tenant_name_conflict(
    client: httpx.AsyncClient, owner: Account
) -> None:
    again = await client.post(
        "/api/v1/auth/register",
        json={"name": "other", "email": owner.email.upper(), "password": PASSWORD},
    )
    assert_error(again, 409, "CONFLICT")
    same_name = await client.post(
        "/api/v1/auth/register",
        json={"name": "acme", "email": "new@acme.example.com", "password": PASSWORD},
    )
    assert_error(same_name, 409, "CONFLICT")


async def test_register_validates_its_fields(client: httpx.AsyncClient) -> None:
    short = await client.post(
        "/api/v1/auth/register",
        json={"name": "tiny", "email": "a@tiny.example.com", "password": "pw9Xq"},
    )
    error = assert_error(short, 422, "VALIDATION_ERROR")
    assert "password" in error["message"]
    assert "pw9Xq" not in short.text
    bad_name = await client.post(
        "/api/v1/auth/register",
        json={"name": "Bad Name!", "email": "a@b.example.com", "password": PASSWORD},
    )
    assert_error(bad_name, 422, "VALIDATION_ERROR")
    extra = await client.post(
        "/api/v1/auth/register",
        json={"name": "x", "email": "a@x.example.com", "password": PASSWORD, "role": "owner"},
    )
    assert_error(extra, 422, "VALIDATION_ERROR")


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, owner: Account
) -> None:
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != owner.refresh_token

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert_error(reused, 401, "UNAUTHENTICATED")

    # The reuse ended the whole login: the newest refresh token and its access token are dead too.
    newest = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_error(newest, 401, "UNAUTHENTICATED")
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert_error(me, 401, "UNAUTHENTICATED")


async def test_a_replayed_refresh_token_ends_access_tokens_already_in_use(
    client: httpx.AsyncClient, owner: Account
) -> None:
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    ).json()
    in_use = {"Authorization": f"Bearer {rotated['access_token']}"}
    for _ in range(3):  # known to this process by now
        assert (await client.get("/api/v1/auth/me", headers=in_use)).status_code == 200
    replayed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token}
    )
    assert_error(replayed, 401, "UNAUTHENTICATED")
    assert_error(await client.get("/api/v1/auth/me", headers=in_use), 401, "UNAUTHENTICATED")


async def test_a_role_change_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "role@acme.example.com", "editor")
    ns = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": "roles"})
    target = f"/api/v1/namespaces/{ns.json()['id']}/configs/k"
    assert (
        await client.put(target, headers=editor.headers, json={"value": "a"})
    ).status_code == 201
    demoted = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    refused = await client.put(target, headers=editor.headers, json={"value": "b"})
    assert_error(refused, 403, "FORBIDDEN")
    assert (await client.get(target, headers=editor.headers)).json()["value"] == "a"


async def test_access_and_refresh_tokens_are_not_interchangeable(
    client: httpx.AsyncClient, owner: Account
) -> None:
    as_refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": owner.access_token}
    )
    assert_error(as_refresh, 401, "UNAUTHENTICATED")
    as_access = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {owner.refresh_token}"}
    )
    assert_error(as_access, 401, "UNAUTHENTICATED")


async def test_logout_ends_access_and_refresh_tokens(
    client: httpx.AsyncClient, owner: Account
) -> None:
    out = await client.post("/api/v1/auth/logout", headers=owner.headers)
    assert out.status_code == 204
    assert_error(await client.get("/api/v1/auth/me", headers=owner.headers), 401, "UNAUTHENTICATED")
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token}
    )
    assert_error(refreshed, 401, "UNAUTHENTICATED")


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


async def test_tampered_jwts_are_refused(client: httpx.AsyncClient, owner: Account) -> None:
    claims = _claims(owner.access_token)
    now = int(time.time())
    cases = {
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, SECRET, algorithm="HS256"
        ),
        "forged": jwt.encode(
            claims, "another-secret-key-entirely-of-good-length", algorithm="HS256"
        ),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, SECRET, algorithm="HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "evil"}, SECRET, algorithm="HS256"),
        "missing jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"}, SECRET, algorithm="HS256"
        ),
        "HS512": jwt.encode(claims, SECRET, algorithm="HS512"),
        "garbage": "not-a-jwt",
    }
    for case, token in cases.items():
        answer = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, case
        assert_error(answer, 401, "UNAUTHENTICATED")
    # The untampered token still works: the refusals above are about the tampering.
    assert (await client.get("/api/v1/auth/me", headers=owner.headers)).status_code == 200


async def test_a_token_for_another_user_id_in_a_valid_session_is_refused(
    client: httpx.AsyncClient, owner: Account
) -> None:
    claims = _claims(owner.access_token)
    forged = jwt.encode({**claims, "sub": str(uuid.uuid4())}, SECRET, algorithm="HS256")
    assert_error(
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "UNAUTHENTICATED",
    )


async def test_no_credentials(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/auth/me")
    assert_error(answer, 401, "UNAUTHENTICATED")
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_deactivated_users_lose_access_at_once(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    assert (await client.get("/api/v1/auth/me", headers=editor.headers)).status_code == 200
    off = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"is_active": False}
    )
    assert off.status_code == 200
    assert_error(
        await client.get("/api/v1/auth/me", headers=editor.headers), 401, "UNAUTHENTICATED"
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": editor.refresh_token}
    )
    assert_error(refreshed, 401, "UNAUTHENTICATED")
    again = await client.post(
        "/api/v1/auth/login", json={"email": editor.email, "password": PASSWORD}
    )
    assert_error(again, 401, "UNAUTHENTICATED")


async def test_bcrypt_hashes_are_accepted_and_upgraded(
    client: httpx.AsyncClient, app: Dispatcher, owner: Account
) -> None:
    import bcrypt
    from sqlalchemy import select, update

    from konfig.users.models import User

    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    sessionmaker = app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, uuid.UUID(owner.tenant_id))
        await session.execute(
            update(User).where(User.email == owner.email).values(password_hash=legacy)
        )
    await login(client, owner.email)
    async with sessionmaker() as session:
        await bind_tenant(session, uuid.UUID(owner.tenant_id))
        stored = (
            await session.execute(select(User.password_hash).where(User.email == owner.email))
        ).scalar_one()
    assert stored.startswith("$argon2id$")


async def test_two_tenants_do_not_see_each_other(client: httpx.AsyncClient, owner: Account) -> None:
    other = await register(client, "initech")
    mine = await client.get("/api/v1/auth/me", headers=owner.headers)
    theirs = await client.get("/api/v1/auth/me", headers=other.headers)
    assert mine.json()["tenant_id"] != theirs.json()["tenant_id"]
