"""The Settings page's Slack card in a real browser: where delivery problems show."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from tests.e2e.conftest import (
    LAPTOP,
    PHONE,
    free_port,
    log_in,
    shot,
    start_server,
    workspace_with_user,
)
from tests.factories import make_insight, make_source
from tests.fakeslack import GOOD_TOKEN, SIGNING_SECRET, Answer, FakeSlack
from tests.fakewebhook import Receiver


def test_settings_show_why_an_alert_is_waiting_and_clear_once_it_is_delivered(
    browser: Browser, engine: Engine, database_url: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, slack_base_url=fake_slack.api_url
    )
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="#alerts",
            settings=settings,
        )
    make_insight(engine, src)
    fake_slack.script("chat.postMessage", *[Answer(500, {"ok": False}, store=True)] * 3)
    now = datetime.now(UTC)
    flush_outbox(engine, settings, now=now)
    process, served = start_server(database_url, tmp_path)
    try:
        page = browser.new_context().new_page()
        page.goto(served + "/settings")
        log_in(page, email)
        card = page.locator("#slack")
        expect(card).to_contain_text("posting to #alerts")
        expect(card).to_contain_text(
            re.compile(r"1 notification\(s\) waiting to be delivered: Slack answered 500")
        )
        flush_outbox(engine, settings, now=now + timedelta(minutes=5))
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        expect(card).to_contain_text("posting to #alerts")
        expect(card).not_to_contain_text("waiting")
        assert len(fake_slack.posted_by(GOOD_TOKEN)) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_settings_say_why_slack_could_not_be_connected_when_slack_cannot_be_reached(
    browser: Browser, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _, email = workspace_with_user(engine)
    # a port nobody listens on: Slack "cannot be reached"
    process, served = start_server(
        database_url, tmp_path, LANTERN_SLACK_BASE_URL=f"http://127.0.0.1:{free_port()}/api/"
    )
    try:
        for label, viewport in (("", LAPTOP), ("-phone", PHONE)):
            context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE)
            page = context.new_page()
            page.goto(served + "/settings")
            log_in(page, email)
            page.fill("#slack input[name=bot_token]", GOOD_TOKEN)
            page.fill("#slack input[name=channel]", "#alerts")
            page.click("#slack form button[type=submit]")
            problem = page.locator("#slack-problem [role=alert]")
            expect(problem).to_contain_text("Lantern could not check the token with Slack")
            expect(problem).to_contain_text("Connection refused")
            expect(problem).not_to_contain_text("JSON")
            # a second try replaces the message rather than piling another under it
            page.click("#slack form button[type=submit]")
            expect(problem).to_have_count(1)
            expect(page.locator("#slack")).to_contain_text("Not connected yet")
            shot(page, f"settings-slack-unreachable{label}", database_url)
            context.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_settings_warn_of_a_missing_public_url_and_set_buttons_webhooks_and_quiet_hours(
    browser: Browser,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    receiver: Receiver,
) -> None:
    _, email = workspace_with_user(engine)
    process, served = start_server(
        database_url, tmp_path, LANTERN_SLACK_BASE_URL=fake_slack.api_url, LANTERN_PUBLIC_URL=""
    )
    try:
        page = browser.new_context().new_page()
        page.goto(served + "/settings")
        log_in(page, email)
        expect(page.locator("#public-url-warning")).to_contain_text("LANTERN_PUBLIC_URL is not set")
        expect(page.locator("#slack-buttons")).to_contain_text("only an “Open in Lantern” link")
        page.fill("#slack input[name=bot_token]", GOOD_TOKEN)
        page.fill("#slack input[name=channel]", "#alerts")
        page.fill("#slack input[name=signing_secret]", "not a secret")
        page.click("#slack form button[type=submit]")
        expect(page.locator("#slack-problem [role=alert]")).to_contain_text("Basic Information")
        page.fill("#slack input[name=signing_secret]", SIGNING_SECRET)
        page.click("#slack form button[type=submit]")
        expect(page.locator("#slack")).to_contain_text("posting to #alerts")
        expect(page.locator("#slack-buttons")).to_contain_text("Snooze buttons")
        expect(page.locator("#interactivity-url")).to_have_text(
            re.compile(r"^http://127\.0\.0\.1:\d+/slack/interactivity$")
        )
        shot(page, "settings-slack-buttons", database_url)

        # a webhook: added (its secret shown once), tested against a receiver, removed
        page.fill("#add-webhook input[name=webhook_url]", receiver.url)
        page.click("#add-webhook button[type=submit]")
        receiver.secret = page.locator("#webhook-secret").input_value()
        assert receiver.secret.startswith("whsec_")
        row = page.locator("#webhooks tr[data-webhook]")
        expect(row).to_contain_text(receiver.url)
        row.locator("button", has_text="Send a test").click()
        expect(page.locator("#webhook-said")).to_contain_text("Test event delivered")
        assert [r["signed"] for r in receiver.received] == [True]
        shot(page, "settings-webhooks", database_url)
        page.on("dialog", lambda dialog: dialog.accept())
        row.locator("button", has_text="Remove").click()
        expect(page.locator("#webhooks")).to_contain_text("No webhooks")

        # quiet hours: a zone that does not exist is refused with the reason, then kept
        page.fill("#quiet-hours input[name=time_zone]", "Mars/Olympus")
        page.select_option("#quiet-hours select[name=quiet_start]", "22")
        page.select_option("#quiet-hours select[name=quiet_end]", "7")
        page.click("#quiet-hours button[type=submit]")
        expect(page.locator("#quiet-said [role=alert]")).to_contain_text("IANA time zone")
        page.fill("#quiet-hours input[name=time_zone]", "Europe/Paris")
        page.select_option("#quiet-hours select[name=digest_hour]", "9")
        page.select_option("#quiet-hours select[name=quiet_hours_delivery]", "summary")
        page.click("#quiet-hours button[type=submit]")
        expect(page.locator("#quiet-said")).to_contain_text("quiet from 22:00 to 7:00")
        expect(page.locator("#quiet-said")).to_contain_text("then one summary")
        expect(page.locator("#quiet-said")).to_contain_text("in a digest at 9:00")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#quiet-hours select[name=quiet_start]")).to_have_value("22")
        expect(page.locator("#quiet-hours input[name=time_zone]")).to_have_value("Europe/Paris")
        held = page.locator("#quiet-hours select[name=quiet_hours_delivery]")
        expect(held).to_have_value("summary")
    finally:
        process.terminate()
        process.wait(timeout=10)
