"""The web console in Chromium, as a person uses it (run by tools/browser/test.sh).

Against `clawfleet serve` and `clawfleet controller` on moto: sign in as a tenant; create an
agent with an invalid field and see the error next to it; fix it and create it; set a secret;
start it and watch it become Running without reloading; stop it; sign out; sign in as another
tenant and see none of it; sign in as admin and see the fleet counts. Every step asserts what a
person sees. Any Content Security Policy violation the browser reports fails the test, and so
does a script error. Screenshots of each page go to $CONSOLE_SCREENSHOTS.
"""

import os
import sys

from playwright.sync_api import Page, expect, sync_playwright

BASE = os.environ["CONSOLE_URL"]
TOKENS = {
    who: os.environ[f"CONSOLE_TOKEN_{who.upper()}"] for who in ("acme", "globex", "admin")
}
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "target/console-screenshots")
SECRET_VALUE = "sk-browser-test-value-0042"
AGENT = "acme-web"

# Registered before any page script: the browser reports every CSP violation here, and the
# console's own policy cannot block an init script Playwright injects.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""

problems = []


def step(name):
    print(f"--- {name}", flush=True)


def shot(page: Page, name: str):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


def check_csp(page: Page):
    violations = page.evaluate("window.__cspViolations || []")
    if violations:
        problems.append(f"{page.url}: CSP violations {violations}")
    assert not problems, "\n".join(problems)


def sign_in(page: Page, who: str):
    page.goto(BASE + "/")
    expect(page).to_have_url(BASE + "/console/sign-in")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # By keyboard: the label names the field, Enter submits.
    page.get_by_label("API token").fill(TOKENS[who])
    page.get_by_label("API token").press("Enter")
    expect(page.get_by_text(f"Signed in as {'admin' if who == 'admin' else who}")).to_be_visible()
    check_csp(page)


def sign_out(page: Page):
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(BASE + "/console/sign-in")
    check_csp(page)


def row_of(page: Page, agent: str):
    return page.locator("#agent-rows tr", has=page.get_by_role("link", name=agent, exact=True))


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox"],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}")
            # Error statuses (a 404 page, a 422 form) are logged too; only CSP refusals count.
            if "Content Security Policy" in m.text or "Refused to" in m.text
            else None,
        )
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))

        step("the sign-in page")
        page.goto(BASE + "/")
        expect(page.get_by_label("API token")).to_be_visible()
        shot(page, "sign-in")

        step("the policy refuses inline script, and this test sees the refusal")
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__inlineRan = true'; document.head.appendChild(s); }"
        )
        page.wait_for_function("window.__cspViolations.length > 0")
        assert page.evaluate("window.__inlineRan === undefined"), "an inline script ran"
        page.evaluate("window.__cspViolations = []")
        problems.clear()

        step("sign in as tenant acme")
        sign_in(page, "acme")
        expect(page.get_by_role("heading", name="Your agents")).to_be_visible()
        expect(page.locator("#agent-rows")).to_contain_text("No agents yet.")

        step("create an agent with an invalid image: the error is next to the field")
        page.get_by_role("link", name="Create an agent").click()
        page.get_by_label("Agent id (optional)").fill(AGENT)
        page.get_by_label("Image (optional)").fill("Not An Image")
        page.get_by_label("Desired state").select_option("stopped")
        page.get_by_label("Skills").fill("web-search")
        page.get_by_label("Secret key names").fill("OPENAI_API_KEY")
        page.get_by_label("Cost tags").fill("CostCenter=4711")
        page.get_by_role("button", name="Create").click()
        image = page.get_by_label("Image (optional)")
        error = page.locator("#image-error")
        expect(error).to_contain_text("image: must be an OCI reference")
        expect(image).to_have_attribute("aria-invalid", "true")
        expect(image).to_have_attribute("aria-describedby", "image-hint image-error")
        # Next to it: the error list follows the image input in the same field.
        assert page.locator(".field", has=image).locator("#image-error").count() == 1
        expect(image).to_have_value("Not An Image")
        expect(page.get_by_label("Skills")).to_have_value("web-search")
        shot(page, "create-error")
        check_csp(page)

        step("fix the field and create it")
        image.fill("public.ecr.aws/openclaw/agent:1.0")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", name=f"Agent {AGENT}")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("Agent created.")
        check_csp(page)

        step("set a secret: write-only")
        page.get_by_role("link", name="Secrets").click()
        expect(page.get_by_label("Key name").first).to_have_value("OPENAI_API_KEY")
        page.get_by_label("Value").first.fill(SECRET_VALUE)
        page.get_by_role("button", name="Save secrets").click()
        expect(page.get_by_role("status")).to_contain_text("Secrets saved.")
        expect(page.locator("#secret-keys")).to_contain_text("OPENAI_API_KEY")
        assert SECRET_VALUE not in page.content(), "a secret value is on the page"
        expect(page.get_by_label("Value").first).to_have_value("")
        shot(page, "secrets")
        check_csp(page)

        step("start it, with confirmation")
        page.get_by_role("link", name=f"Back to {AGENT}").click()
        page.get_by_role("link", name="Start", exact=True).click()
        expect(page.get_by_role("heading", name=f"Start {AGENT}?")).to_be_visible()
        page.get_by_role("button", name=f"Yes, start {AGENT}").click()
        expect(page.get_by_role("status")).to_contain_text("Start requested")
        check_csp(page)

        step("watch it become Running in the table without reloading")
        page.get_by_role("link", name="Agents", exact=True).click()
        row = row_of(page, AGENT)
        expect(row).to_be_visible()
        # A marker a reload would wipe: the table must update in place.
        page.evaluate("window.__sameDocument = true")
        expect(row.locator(".badge")).to_have_text("Running", timeout=90_000)
        expect(row.locator("td").nth(2)).to_have_text("Yes", timeout=30_000)
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        shot(page, "agents")
        check_csp(page)

        step("the agent's detail: spec, conditions, events; recent log lines on demand")
        page.get_by_role("link", name=AGENT, exact=True).click()
        expect(page.get_by_role("heading", name="Conditions")).to_be_visible()
        expect(page.get_by_role("heading", name="Events")).to_be_visible()
        expect(page.get_by_text("CostCenter=4711")).to_be_visible()
        assert SECRET_VALUE not in page.content()
        shot(page, "agent")
        page.get_by_role("link", name="Recent log lines").click()
        expect(page.get_by_role("heading", name=f"Recent log lines of {AGENT}")).to_be_visible()
        check_csp(page)
        page.get_by_role("link", name=f"Back to {AGENT}").click()

        step("on a phone: no sideways scrolling")
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("link", name="Agents", exact=True).click()
        expect(row_of(page, AGENT)).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone"
        shot(page, "agents-phone")
        page.set_viewport_size({"width": 1100, "height": 760})

        step("stop it, with confirmation")
        page.get_by_role("link", name=AGENT, exact=True).click()
        page.get_by_role("link", name="Stop", exact=True).click()
        page.get_by_role("button", name=f"Yes, stop {AGENT}").click()
        expect(page.get_by_role("status")).to_contain_text("Stop requested")
        page.get_by_role("link", name="Agents", exact=True).click()
        expect(row_of(page, AGENT).locator("td").first).to_have_text("stopped")
        expect(row_of(page, AGENT).locator(".badge")).to_have_text("Stopped", timeout=60_000)
        check_csp(page)

        step("sign out")
        sign_out(page)
        page.goto(BASE + "/console/")
        expect(page).to_have_url(BASE + "/console/sign-in")

        step("another tenant sees none of it")
        sign_in(page, "globex")
        expect(page.locator("#agent-rows")).to_contain_text("No agents yet.")
        expect(page.get_by_text(AGENT)).to_have_count(0)
        response = page.goto(BASE + f"/console/agents/{AGENT}")
        assert response is not None and response.status == 404, response and response.status
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "CostCenter" not in page.content()
        shot(page, "other-tenant-404")
        check_csp(page)
        sign_out(page)

        step("admin: the fleet counts")
        sign_in(page, "admin")
        expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
        # The controller writes the summary at each resync (3 s here): the stop shows soon.
        for _ in range(30):
            text = page.locator("main").inner_text()
            if "Stopped" in text and "acme" in text:
                break
            page.wait_for_timeout(1000)
            page.reload()
        counts = page.locator("#phase-counts")
        expect(counts).to_contain_text("1 agents")
        expect(counts).to_contain_text("Stopped")
        expect(page.locator("#tenants")).to_contain_text("acme")
        expect(page.locator("#as-of")).to_contain_text("last resync at")
        shot(page, "fleet")
        page.get_by_role("link", name="acme", exact=True).click()
        expect(row_of(page, AGENT)).to_be_visible()
        check_csp(page)

        browser.close()
    print("console browser test: every step passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
