"""Signing in and out, lockout after repeated failures, password change and reset."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from tests.factories.tenancy import PASSWORD

NEW_PASSWORD = "a-long-and-unusual-passphrase-42"


def sign_in(client, username: str, password: str, **extra: str):
    return client.post(reverse("login"), {"username": username, "password": password, **extra})


def test_it_renders_an_accessible_sign_in_page(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<label for="id_username">' in body
    assert '<label for="id_password">' in body
    assert 'class="skip-link" href="#main"' in body
    assert reverse("password_reset") in body


def test_it_signs_in_and_lands_on_the_dashboard(client, bob):
    response = sign_in(client, "bob", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    response = client.get(reverse("home"))
    assert response["Location"] == "/o/acme/"
    assert client.get("/o/acme/").status_code == 200


def test_it_follows_next_after_sign_in(client, alice):
    response = sign_in(client, "alice", PASSWORD, next="/o/acme/members/")
    assert response["Location"] == "/o/acme/members/"


def test_it_ignores_a_next_pointing_elsewhere(client, alice):
    response = sign_in(client, "alice", PASSWORD, next="https://evil.example/")
    assert response["Location"] == reverse("home")


def test_it_rejects_a_wrong_password_with_a_linked_error(client, bob):
    response = sign_in(client, "bob", "wrong-password")
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated
    body = response.content.decode()
    assert 'role="alert"' in body
    assert "correct username and password" in body


def test_it_locks_out_after_repeated_failures(client, bob):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert sign_in(client, "bob", "wrong-password").status_code == 200
    response = sign_in(client, "bob", "wrong-password")
    assert response.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    assert "Sign-in temporarily paused" in response.content.decode()
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert f"try again in {minutes} minutes" in response.content.decode()
    # Even the right password is refused during the cool-off.
    response = sign_in(client, "bob", PASSWORD)
    assert response.status_code == 429
    assert not client.get(reverse("home")).wsgi_request.user.is_authenticated


def test_it_signs_out_only_with_post(client, bob):
    client.force_login(bob)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response["Location"] == reverse("login")
    assert client.get("/o/acme/").status_code == 302


def test_it_sends_signed_in_users_on_from_the_sign_in_page(client, bob):
    client.force_login(bob)
    assert client.get(reverse("login"))["Location"] == reverse("home")


def test_it_changes_the_password(client, bob):
    client.force_login(bob)
    assert client.get(reverse("password_change")).status_code == 200
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response["Location"] == reverse("password_change_done")
    assert "Password changed" in client.get(reverse("password_change_done")).content.decode()
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)


def test_it_refuses_a_weak_new_password(client, bob):
    client.force_login(bob)
    response = client.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": "bob", "new_password2": "bob"}
    )
    assert response.status_code == 200
    assert 'aria-invalid="true"' in response.content.decode()
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)


def test_it_resets_a_forgotten_password_by_email(client, bob):
    response = client.post(reverse("password_reset"), {"email": "bob@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["bob@example.com"]
    assert message.subject == "Reset your refmgr password"
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", message.body)
    assert link, message.body

    response = client.get(link[1])
    assert response.status_code == 302  # Django swaps the token for a session marker
    set_password_url = response["Location"]
    assert "Choose a new password" in client.get(set_password_url).content.decode()
    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response["Location"] == reverse("password_reset_complete")
    assert sign_in(client, "bob", NEW_PASSWORD).status_code == 302


def test_it_does_not_reveal_whether_an_email_has_an_account(client, db):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []


def test_it_explains_a_used_reset_link(client, db):
    response = client.get(reverse("password_reset_confirm", kwargs={"uidb64": "MQ", "token": "bad-token"}))
    assert response.status_code == 200
    assert "be used" in response.content.decode()


@pytest.mark.parametrize("name", ["password_reset", "password_reset_done", "password_reset_complete", "login"])
def test_it_renders_the_public_account_pages(client, db, name):
    assert client.get(reverse(name)).status_code == 200
