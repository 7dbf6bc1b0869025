"""IRCv3 against InspIRCd 3 from Debian, with a minimal services server
linked in over the real server protocol (tests/…/services.py): SASL PLAIN
for the bot, and services accounts reaching the relay via account-tag."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import pytest

from futon.config.models import SaslSection
from tests.transports.irc_bot.kit import Connect, Inspircd, MakeBot, RawClient, make_inspircd
from tests.transports.irc_bot.services import FakeServices

ACCOUNTS = {"futonbot": "bot-secret", "alice": "alice-secret"}


@pytest.fixture
async def inspircd() -> AsyncIterator[Inspircd]:
    server = make_inspircd()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def services(inspircd: Inspircd) -> AsyncIterator[FakeServices]:
    linked = FakeServices(inspircd.server_port, inspircd.link_password, ACCOUNTS)
    await linked.start()
    yield linked
    await linked.stop()


@pytest.fixture
def bot_sasl(monkeypatch: pytest.MonkeyPatch) -> SaslSection:
    monkeypatch.setenv("FUTON_TEST_BOT_SASL", ACCOUNTS["futonbot"])
    return SaslSection(account="futonbot", password_env="FUTON_TEST_BOT_SASL")


async def test_sasl_plain_logs_the_bot_in_and_account_tag_names_who_speaks(
    inspircd: Inspircd,
    services: FakeServices,
    make_bot: MakeBot,
    connect: Connect,
    bot_sasl: SaslSection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="futon.irc")
    bot, hooks = await make_bot(inspircd.port, sasl=bot_sasl)
    await hooks.event("joined")

    alice = await RawClient.connect(inspircd.port)
    await alice.register_with_sasl("alice", "alice", ACCOUNTS["alice"])
    await alice.join("#futon")
    bob = await connect(inspircd.port, "bob", channel="#futon")

    await alice.send("WHOIS futonbot")
    logged_in = await alice.expect(lambda line: line.command in ("330", "318"))
    assert logged_in.command == "330" and logged_in.params[2] == "futonbot"  # the bot's own account

    await alice.send("PRIVMSG #futon :from a services account")
    await bob.send("PRIVMSG #futon :from nobody in particular")
    await alice.send("PRIVMSG futonbot :and privately")
    await hooks.wait(lambda: len(hooks.messages) == 3)
    by_text = {m.text: m for m in hooks.messages}
    assert by_text["from a services account"].account == "alice"
    assert by_text["from nobody in particular"].account is None
    assert by_text["and privately"].account == "alice" and by_text["and privately"].private
    await alice.close()
    assert bot.connected
    assert ">> AUTHENTICATE <redacted>" in caplog.text  # pydle's wire log, minus the secret
    assert ACCOUNTS["futonbot"] not in caplog.text
    assert (
        base64.b64encode(f"futonbot\0futonbot\0{ACCOUNTS['futonbot']}".encode()).decode()
        not in caplog.text
    )


async def test_refused_sasl_credentials_fail_loudly_and_are_retried(
    inspircd: Inspircd, services: FakeServices, make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUTON_TEST_BOT_SASL", "not-the-password")
    sasl = SaslSection(account="futonbot", password_env="FUTON_TEST_BOT_SASL")
    bot, hooks = await make_bot(inspircd.port, sasl=sasl)

    refusals = await hooks.event("sasl-failed", 2)
    assert all("SASL refused" in detail for detail in refusals)
    assert "connected" not in hooks.kinds() and not bot.connected


async def test_without_services_sasl_is_not_offered_and_the_bot_gets_in_once_they_link(
    inspircd: Inspircd, make_bot: MakeBot, bot_sasl: SaslSection
) -> None:
    """Why the bot keeps retrying after a SASL failure: InspIRCd hides the
    ``sasl`` capability while services are down."""
    bot, hooks = await make_bot(inspircd.port, sasl=bot_sasl)
    (refusal,) = await hooks.event("sasl-failed")
    assert "does not offer SASL" in refusal
    assert not bot.connected

    services = FakeServices(inspircd.server_port, inspircd.link_password, ACCOUNTS)
    await services.start()
    try:
        await hooks.event("joined")
        assert bot.connected
    finally:
        await services.stop()
