"""The Settings page's breakdowns editor in a real browser."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from tests.e2e.conftest import PHONE, log_in, start_server, workspace_with_user
from tests.factories import make_source


def test_a_user_adds_a_property_breakdown_in_settings_and_is_told_why_a_personal_one_is_refused(
    browser: Browser, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    process, served = start_server(database_url, tmp_path)
    try:
        page = browser.new_context().new_page()
        page.goto(served + "/settings")
        log_in(page, email)
        page.click(f"button[data-breakdowns='{src.id}']")
        editor = page.locator("#breakdowns-editor")
        field = editor.locator("input[name=dimensions]")
        expect(field).to_have_value("os, app_version, library, country, page_path")
        field.fill("os, country, properties.plan")
        editor.locator("button[type=submit]").click()
        expect(editor).to_contain_text("Breakdowns saved.")
        expect(field).to_have_value("os, country, properties.plan")
        # a property named like a person's data is refused, with the reason, and the
        # list stays as it was
        field.fill("os, country, properties.plan, properties.email")
        editor.locator("button[type=submit]").click()
        expect(editor.locator("#breakdowns-problem")).to_contain_text("email")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        page.click(f"button[data-breakdowns='{src.id}']")
        expect(page.locator("#breakdowns-editor input[name=dimensions]")).to_have_value(
            "os, country, properties.plan"
        )
        page.set_viewport_size(PHONE)  # the sources' three buttons and the editor fit a phone
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
