"""Getting in: server passwords, TLS verification and SASL (which fails
loudly and keeps retrying when the server does not offer it)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from futon.config.models import SaslSection
from futon.protocol.errors import ConfigError
from futon.transports.irc_bot import IrcBot
from tests.transports.irc_bot.kit import MakeBot, Ngircd, RecordingHooks, make_ngircd, network_for


@pytest.fixture
async def ngircd_with_password() -> AsyncIterator[Ngircd]:
    server = make_ngircd(password="letmein")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ngircd_with_tls() -> AsyncIterator[Ngircd]:
    server = make_ngircd(tls=True)
    await server.start()
    yield server
    await server.stop()


async def test_the_server_password_is_sent_and_accepted(
    ngircd_with_password: Ngircd, make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="futon.irc")
    bot, hooks = await make_bot(ngircd_with_password.port, password="letmein")
    await hooks.event("joined")
    assert bot.connected
    assert ">> PASS <redacted>" in caplog.text and "letmein" not in caplog.text


async def test_a_wrong_server_password_is_refused_and_retried(
    ngircd_with_password: Ngircd, make_bot: MakeBot
) -> None:
    bot, hooks = await make_bot(ngircd_with_password.port, password="wrong")
    failures = await hooks.event("connect-failed", 2)
    assert all("Bad password" in detail for detail in failures)
    assert "connected" not in hooks.kinds() and not bot.connected


async def test_tls_to_a_plain_port_fails_and_keeps_retrying(
    ngircd: Ngircd, make_bot: MakeBot
) -> None:
    bot, hooks = await make_bot(ngircd.port, tls=True, bot_kwargs={"connect_timeout_s": 0.3})
    failures = await hooks.event("connect-failed", 2)
    # ngircd waits for the end of a "line" that never comes, so the handshake times out.
    assert all(detail.startswith("TLS handshake timed out after 0.3s") for detail in failures), (
        failures
    )
    assert not bot.connected


async def test_tls_verification_refuses_a_self_signed_certificate(
    ngircd_with_tls: Ngircd, make_bot: MakeBot
) -> None:
    bot, hooks = await make_bot(ngircd_with_tls.tls_port, tls=True)
    failures = await hooks.event("connect-failed", 2)
    assert all(detail.startswith("TLS certificate verification failed") for detail in failures), (
        failures
    )
    assert not bot.connected


async def test_tls_verify_false_accepts_a_self_signed_certificate(
    ngircd_with_tls: Ngircd, make_bot: MakeBot
) -> None:
    _, hooks = await make_bot(ngircd_with_tls.tls_port, tls=True, tls_verify=False)
    (detail,) = await hooks.event("connected")
    assert "(tls)" in detail
    await hooks.event("joined")


async def test_sasl_on_a_server_without_sasl_fails_loudly_and_keeps_retrying(
    ngircd: Ngircd,
    make_bot: MakeBot,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ngircd offers no SASL: the bot must not register without it."""
    monkeypatch.setenv("FUTON_TEST_SASL", "hunter2")
    sasl = SaslSection(account="futonbot", password_env="FUTON_TEST_SASL")
    bot, hooks = await make_bot(ngircd.port, sasl=sasl)

    refusals = await hooks.event("sasl-failed", 2)
    assert all("does not offer SASL" in detail and "'futonbot'" in detail for detail in refusals)
    failures = await hooks.event("connect-failed", 2)
    assert all("SASL failed" in detail for detail in failures)
    assert "connected" not in hooks.kinds() and not bot.connected
    assert any(
        r.levelname == "ERROR" and "does not offer SASL" in r.getMessage() for r in caplog.records
    )
    assert "hunter2" not in caplog.text + repr(hooks.events)


def test_a_missing_sasl_password_variable_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FUTON_TEST_SASL_MISSING", raising=False)
    network = network_for(
        6667, sasl=SaslSection(account="futonbot", password_env="FUTON_TEST_SASL_MISSING")
    )
    with pytest.raises(ConfigError, match="FUTON_TEST_SASL_MISSING"):
        IrcBot(network, RecordingHooks())
