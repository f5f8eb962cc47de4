"""The staff admin in Chromium, as a staff member uses it.

Signs in, searches the missions, opens one, changes its title (and sees
the change through the API), runs an action on two selected rows, meets a
field error, and logs out; a user who is not staff is refused; a forged
POST without the CSRF token changes nothing. Each page is photographed.
"""

import argparse
import json
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import Select, WebDriverWait


def api(base, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"  ok: {what}")


SHOTS = [0]


class Session:
    def __init__(self, args):
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1366,900",
                     "--no-first-run", "--disable-extensions"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.implicitly_wait(5)
        self.base = args.base
        self.shots = args.screenshots

    def open(self, path):
        self.driver.get(self.base + path)

    def shot(self, name):
        SHOTS[0] += 1
        self.driver.save_screenshot(f"{self.shots}/{SHOTS[0]:02d}-{name}.png")

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def submit(self, element):
        """Clicks a link or a submit button and waits until the next page
        replaced this one (so nothing reads the old page meanwhile)."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()

        def replaced(driver):
            try:
                page.is_enabled()
                return False
            except WebDriverException:
                # Stale, or (Chromium) "node does not belong to the document".
                return True

        wait = WebDriverWait(self.driver, 15)
        wait.until(replaced)
        wait.until(lambda driver: driver.execute_script("return document.readyState") == "complete")

    def login(self, username, password):
        self.open("/admin/")
        check("/admin/login/" in self.driver.current_url, "the admin asks to log in first")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]"))

    def quit(self):
        self.driver.quit()


def staff_flow(args, anna, missions):
    s = Session(args)
    try:
        s.open("/admin/login/")
        s.shot("login")
        s.login("root", args.password)
        check(s.driver.current_url.rstrip("/").endswith("/admin"), "staff land on the index")
        check("Site administration" in s.text(), "the index is shown")
        s.shot("index")

        s.submit(s.driver.find_element(By.LINK_TEXT, "Missions"))
        search = s.driver.find_element(By.NAME, "q")
        search.send_keys("tax")
        s.submit(s.driver.find_element(By.CSS_SELECTOR, "#changelist-search input[type=submit]"))
        body = s.text()
        check("Retrieve Tax Documents" in body and "Renew passport" not in body,
              "the search finds the tax missions only")
        s.shot("changelist-search")

        s.submit(s.driver.find_element(By.LINK_TEXT, "Retrieve Tax Documents"))
        s.shot("change-mission")
        title = s.driver.find_element(By.NAME, "title")
        title.clear()
        title.send_keys("Retrieve 2026 Tax Documents")
        s.submit(s.driver.find_element(By.NAME, "_save"))
        check("was changed successfully" in s.text(), "the change is confirmed")
        s.shot("changed")
        seen = api(args.base, "GET", f"/api/missions/{missions['taxes']}/", token=anna["access"])
        check(seen["title"] == "Retrieve 2026 Tax Documents", "the API shows the new title")

        s.open("/admin/missions/mission/")
        for mission in ("taxes", "passport"):
            s.driver.find_element(
                By.CSS_SELECTOR, f"input[name=_selected_action][value='{missions[mission]}']"
            ).click()
        Select(s.driver.find_element(By.NAME, "action")).select_by_value("start")
        s.submit(s.driver.find_element(By.CSS_SELECTOR, "#changelist-form button[type=submit]"))
        check("Successfully updated 2 missions." in s.text(), "the action reports both rows")
        s.shot("action")
        for mission in ("taxes", "passport"):
            seen = api(args.base, "GET", f"/api/missions/{missions[mission]}/", token=anna["access"])
            check(seen["status"] == "in_progress", f"{mission} was started")

        s.open(f"/admin/missions/mission/{missions['forms']}/change/")
        title = s.driver.find_element(By.NAME, "title")
        title.clear()
        title.send_keys("   ")
        s.submit(s.driver.find_element(By.NAME, "_save"))
        check("This field may not be blank." in s.text(), "a blank title is refused next to its field")
        s.shot("field-error")

        # A page of another site cannot post without the token: the same
        # request from this page, without it, is refused and changes nothing.
        status = s.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch('/admin/missions/mission/', {method: 'POST', credentials: 'include',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'},
              body: 'action=cancel&_selected_action=' + arguments[0]})
              .then(r => done(r.status)).catch(e => done(String(e)));
            """,
            missions["forms"],
        )
        check(status == 403, f"a POST without the CSRF token is refused ({status})")
        seen = api(args.base, "GET", f"/api/missions/{missions['forms']}/", token=anna["access"])
        check(seen["status"] == "pending", "the forged POST changed nothing")

        # Every other list, as staff browse them.
        for path, name, heading, expect in (
            ("/admin/auth/user/", "users", "Select user to change", "anna@example.com"),
            ("/admin/missions/planstep/", "plan-steps", "Select plan step to change",
             "Collect the W-2"),
            ("/admin/documents/document/", "documents", "Select document to change", "0 documents"),
            ("/admin/activities/activity/", "activities", "Select activity to change",
             "mission_created"),
            ("/admin/jobs/job/", "jobs", "Select job to change", "jobs"),
        ):
            s.open(path)
            body = s.text()
            check(heading in body and expect in body, f"the {name} list shows {expect!r}")
            s.shot(name)

        s.submit(s.driver.find_element(By.CSS_SELECTOR, "#logout-form button"))
        check("Logged out" in s.text(), "logging out")
        s.shot("logged-out")
        s.open("/admin/")
        check("/admin/login/" in s.driver.current_url, "after logout the admin asks to log in again")
    finally:
        s.quit()


def non_staff_flow(args, anna):
    s = Session(args)
    try:
        s.login("anna", anna["password"])
        check("correct username and password for a staff account" in s.text(),
              "a user who is not staff is refused with a message")
        check("/admin/login/" in s.driver.current_url, "and stays on the login page")
        s.shot("non-staff-refused")
    finally:
        s.quit()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--chromedriver", required=True)
    parser.add_argument("--chromium", required=True)
    args = parser.parse_args()

    anna_password = "violet-Harbor-1987"
    session = api(args.base, "POST", "/api/auth/register/",
                  {"username": "anna", "email": "anna@example.com", "password": anna_password})
    anna = {"access": session["access"], "password": anna_password}
    missions = {}
    for key, title, priority in (("taxes", "Retrieve Tax Documents", "high"),
                                 ("passport", "Renew passport", "low"),
                                 ("forms", "Tax forms 2027", "medium")):
        created = api(args.base, "POST", "/api/missions/",
                      {"title": title, "type": "document_retrieval", "priority": priority},
                      token=anna["access"])
        missions[key] = created["id"]
    api(args.base, "POST", f"/api/missions/{missions['taxes']}/steps/",
        {"title": "Collect the W-2"}, token=anna["access"])

    print("staff:")
    staff_flow(args, anna, missions)
    print("not staff:")
    non_staff_flow(args, anna)
    return 0


if __name__ == "__main__":
    sys.exit(main())
