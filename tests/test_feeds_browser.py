"""Browser: the calendar page's copy button where the clipboard API is missing (a plain-http
intranet) selects the address and says to copy it by hand; with the API it says "copied"."""
import pytest

from . import factories as f
from .conftest import browser_login

pytestmark = pytest.mark.browser

NO_CLIPBOARD = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined, configurable: true});"


def _open_calendar(live_server, page):
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    browser_login(page, live_server.url, secretary.username, f.PASSWORD)
    page.goto(live_server.url + "/account/calendar")
    return page.locator("input.feed-url")


def test_copy_without_clipboard_api_selects_the_address_and_says_to_copy_by_hand(live_server, page):
    page.add_init_script(NO_CLIPBOARD)
    field = _open_calendar(live_server, page)
    url = field.get_attribute("data-feed-url")
    assert page.evaluate("navigator.clipboard") is None
    page.get_by_role("button", name="复制地址").click()
    status = page.locator(".copy-status")
    status.filter(has_text="请长按地址手动复制").wait_for()
    assert page.evaluate("document.activeElement.classList.contains('feed-url')")
    selected = page.evaluate("(() => { const f = document.activeElement; return f.value.slice(f.selectionStart, f.selectionEnd); })()")
    assert selected == url


def test_copy_with_clipboard_api_says_copied(live_server, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _open_calendar(live_server, page)
    page.get_by_role("button", name="复制地址").click()
    page.locator(".copy-status").filter(has_text="已复制").wait_for()


def test_address_field_selects_all_on_focus(live_server, page):
    field = _open_calendar(live_server, page)
    field.click()
    assert page.evaluate("(() => { const f = document.activeElement; return f.selectionEnd - f.selectionStart; })()") == \
        len(field.get_attribute("value"))
