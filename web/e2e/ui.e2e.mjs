// The web UI end to end, in real Chromium (Debian's /usr/bin/chromium, headless) driven by
// playwright-core, against a real manager with a real agent. Started by the Rust test
// crates/patchdeck/tests/web_ui.rs, which runs the manager, enrolls the agent when this script
// hands it a registration token, and checks the outcome on the server afterwards.
//
// Environment (set by that test):
//   PD_URL            the manager's base URL (https://localhost:PORT)
//   PD_CA             the manager CA's certificate (PEM file): only the manager's own key is trusted
//   PD_ADMIN_PASSWORD the first-start password of `admin`
//   PD_HANDSHAKE      a directory: this script writes token.txt, the test answers host.json
//   PD_SCREENSHOTS    where the screenshots go
//   PD_CHROMIUM       the browser (default /usr/bin/chromium)
//
// Steps: first sign-in (forced password change, forced TOTP enrollment), sign out, sign in with
// password and TOTP; create a registration token and have the agent enroll with it; see the host
// and its updates; deploy them and watch the deployment finish live; create a maintenance window;
// create an operator, put it in a group, sign in as it and check what it cannot see.

import { createHmac, createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

// axe is evaluated through the DevTools protocol, which the manager's CSP does not apply to: the
// pages themselves run under that CSP, as in production.
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("PD_URL");
const CA = readFileSync(env("PD_CA"), "utf8");
const ADMIN_PASSWORD = env("PD_ADMIN_PASSWORD");
const HANDSHAKE = env("PD_HANDSHAKE");
const SHOTS = env("PD_SCREENSHOTS");
const CHROMIUM = env("PD_CHROMIUM", "/usr/bin/chromium");
const NEW_ADMIN_PASSWORD = "e2e admin password, long enough";
const OPERATOR_PASSWORD = "operator first password 1";
const NEW_OPERATOR_PASSWORD = "operator own password, long enough";
const LONG = 120_000;

mkdirSync(SHOTS, { recursive: true });
const step = (text) => console.log(`[ui-e2e] ${new Date().toISOString()} ${text}`);

// ----------------------------------------------------------------------------------------------
// TOTP (RFC 6238: SHA-1, 6 digits, 30 s), as an authenticator app computes it.

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, step = Math.floor(Date.now() / 30_000)) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/** Waits until the TOTP step after `used` has begun (a step's code is accepted once). */
async function nextTotpStep(used) {
  while (Math.floor(Date.now() / 30_000) <= used) await new Promise((r) => setTimeout(r, 500));
}

// ----------------------------------------------------------------------------------------------
// TLS: Chromium trusts exactly the manager's key (checked here against the manager's CA).

async function managerSpki() {
  const url = new URL(BASE);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", servername: url.hostname, port: Number(url.port), ca: CA }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      const spki = cert.publicKey.export({ type: "spki", format: "der" });
      resolve(createHash("sha256").update(spki).digest("base64"));
    });
    socket.on("error", reject);
  });
}

// ----------------------------------------------------------------------------------------------
// Helpers.

/** Saves a screenshot of the page and checks it with axe (WCAG 2 A and AA rules). */
async function shot(page, name) {
  await page.waitForLoadState("networkidle", { timeout: 5_000 }).catch(() => {});
  // Let progress bars and charts finish their transitions.
  await page.waitForTimeout(800);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
  step(`screenshot ${name}.png`);
  await accessibility(page, name);
}

/** Serious and critical accessibility violations become failures of the run. */
async function accessibility(page, name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`);
  });
  for (const v of violations) failures.push(`${name}: ${v}`);
}

async function expectVisible(locator, what, timeout = 30_000) {
  try {
    await locator.first().waitFor({ state: "visible", timeout });
  } catch (e) {
    throw new Error(`expected to see ${what}: ${e.message}`);
  }
}

async function expectAbsent(locator, what) {
  const n = await locator.count();
  if (n !== 0) throw new Error(`expected not to see ${what}, found ${n}`);
}

/** Signs in with a password; returns the page after the form is sent. */
async function signIn(page, username, password) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel("Username").fill(username);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Signs in with the keyboard alone: the username field has the focus, Tab moves on, Enter sends. */
async function signInWithKeyboard(page, username, password) {
  await page.goto(`${BASE}/login`);
  await expectVisible(page.getByRole("button", { name: "Sign in" }), "the sign-in page");
  await page.keyboard.type(username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
}

async function changePassword(page, current, next) {
  await expectVisible(page.getByRole("button", { name: "Set new password" }), "the forced password change");
  await page.getByLabel("Current password").fill(current);
  await page.getByLabel(/^New password/).fill(next);
  await page.getByLabel("Repeat the new password").fill(next);
  await page.getByRole("button", { name: "Set new password" }).click();
}

/** The forced TOTP enrollment; returns the secret and the step its confirmation used. */
async function enrollTotp(page) {
  await page.getByRole("button", { name: "Set up authenticator app" }).click();
  const secretBox = page.getByLabel("Secret key");
  await expectVisible(secretBox, "the TOTP secret");
  const secret = (await secretBox.innerText()).replace(/\s+/g, "");
  const used = Math.floor(Date.now() / 30_000);
  await page.getByLabel("Code from the app").fill(totp(secret, used));
  await page.getByRole("button", { name: "Turn on" }).click();
  await expectVisible(page.getByLabel("Recovery codes"), "the recovery codes");
  await page.getByLabel("I have stored these codes somewhere safe").check();
  await page.getByRole("button", { name: "Continue" }).first().click();
  await page.getByRole("button", { name: "Continue" }).first().click();
  return { secret, used };
}

async function signOut(page, username) {
  await page.getByRole("button", { name: `Account menu for ${username}` }).click();
  await page.getByRole("menuitem", { name: "Sign out" }).click();
  await expectVisible(page.getByRole("button", { name: "Sign in" }), "the sign-in page after signing out");
}

async function waitForFile(path, what, timeout = LONG) {
  const until = Date.now() + timeout;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return JSON.parse(readFileSync(path, "utf8"));
}

// ----------------------------------------------------------------------------------------------

const spki = await managerSpki();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", `--ignore-certificate-errors-spki-list=${spki}`],
});
const failures = [];
let current = null;
try {
  const admin = await browser.newContext({ viewport: { width: 1366, height: 860 }, colorScheme: "light" });
  const page = await admin.newPage();
  current = page;
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));

  step("first sign-in: forced password change, then forced MFA enrollment");
  await signIn(page, "admin", ADMIN_PASSWORD);
  await changePassword(page, ADMIN_PASSWORD, NEW_ADMIN_PASSWORD);
  await expectVisible(page.getByRole("heading", { name: "Set up two-factor authentication" }), "the forced MFA page");
  await shot(page, "mfa-setup");
  const adminTotp = await enrollTotp(page);
  await expectVisible(page.getByRole("heading", { name: "Dashboard" }), "the dashboard");

  step("sign out, sign in again with password and TOTP");
  await signOut(page, "admin");
  await signIn(page, "admin", NEW_ADMIN_PASSWORD);
  await expectVisible(page.getByLabel("Authentication code"), "the MFA step");
  await nextTotpStep(adminTotp.used);
  await page.getByLabel("Authentication code").fill(totp(adminTotp.secret));
  await shot(page, "login-mfa");
  await page.getByRole("button", { name: "Verify" }).click();
  await expectVisible(page.getByRole("heading", { name: "Dashboard" }), "the dashboard after MFA");

  step("create a registration token and enroll an agent with it");
  await page.goto(`${BASE}/registration-tokens`);
  await page.getByRole("button", { name: "New token" }).click();
  const tokenDialog = page.getByRole("dialog");
  await tokenDialog.getByLabel(/^Label/).fill("e2e rack");
  await tokenDialog.getByLabel(/^Seats/).fill("1");
  await tokenDialog.getByLabel(/^Expires in/).fill("2");
  await tokenDialog.getByRole("button", { name: "Create token" }).click();
  const install = await page.getByLabel("Install command").innerText();
  const token = /--token (\S+)/.exec(install)?.[1];
  if (!token) throw new Error(`no token in the install command: ${install}`);
  await shot(page, "registration-token");
  writeFileSync(join(HANDSHAKE, "token.txt"), token);
  const host = await waitForFile(join(HANDSHAKE, "host.json"), "the agent's enrollment");
  step(`agent enrolled as host ${host.id} (${host.hostname})`);

  step("the host appears online with its updates");
  await page.goto(`${BASE}/hosts`);
  const row = page.getByRole("row").filter({ hasText: host.hostname }).filter({ hasText: "online" });
  await expectVisible(row, `${host.hostname} online in the host list`, LONG);
  await shot(page, "hosts");
  await page.goto(`${BASE}/hosts/${host.id}?tab=updates`);
  for (const name of ["hello", "other"]) {
    await expectVisible(page.getByRole("cell", { name: new RegExp(`^${name}\\b`) }), `the update of ${name}`, LONG);
  }
  await expectVisible(page.getByText(/security/i), "a security classification");
  await shot(page, "host-updates");

  step("deploy every update now and watch it finish without reloading");
  await page.goto(`${BASE}/deployments/new?hosts=${host.id}`);
  await page.getByRole("textbox", { name: "Name", exact: true }).fill("e2e: patch the rack");
  await page.getByRole("radio", { name: "All available updates" }).check();
  await page.getByRole("radio", { name: /^Now/ }).check();
  await page.getByRole("button", { name: "Create deployment" }).click();
  await page.waitForURL(/\/deployments\/\d+$/);
  const deploymentUrl = page.url();
  await page.evaluate(() => {
    window.__pdNoReload = true;
  });
  await expectVisible(page.getByText("succeeded", { exact: true }), "the deployment succeeding", LONG);
  if (!(await page.evaluate(() => window.__pdNoReload === true)) || page.url() !== deploymentUrl) {
    throw new Error("the deployment page reloaded or moved while waiting");
  }
  await shot(page, "deployment");

  step("create a maintenance window for the db group");
  await page.goto(`${BASE}/maintenance-windows`);
  await page.getByRole("button", { name: "New window" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("textbox", { name: "Name", exact: true }).fill("Weekend night");
  await dialog.getByLabel(/^Group/).click();
  await page.getByRole("option", { name: "db", exact: true }).click();
  await dialog.getByRole("button", { name: "Create window" }).click();
  await expectVisible(page.getByText("Weekend night"), "the new window");
  await shot(page, "maintenance-calendar");

  step("create an operator and put it in the web group; put the agent's host in the db group");
  await page.goto(`${BASE}/users`);
  await page.getByRole("button", { name: "New user" }).click();
  const userDialog = page.getByRole("dialog");
  await userDialog.getByRole("textbox", { name: "Username", exact: true }).fill("olga");
  await userDialog.getByLabel(/^Role/).click();
  await page.getByRole("option", { name: "operator" }).click();
  await userDialog.getByLabel("Initial password (optional)").fill(OPERATOR_PASSWORD);
  await userDialog.getByRole("button", { name: "Create user" }).click();
  await expectVisible(page.getByRole("cell", { name: "olga" }), "the new user");

  await page.goto(`${BASE}/groups`);
  await page.getByRole("link", { name: "web", exact: true }).click();
  await page.getByLabel("Add a user").fill("olga");
  await page.getByRole("option", { name: /olga/ }).click();
  await expectVisible(page.getByRole("table", { name: "Users of the group" }).getByText("olga"), "olga in web");
  await page.goto(`${BASE}/groups`);
  await page.getByRole("link", { name: "db", exact: true }).click();
  await page.getByLabel("Add a host").fill(host.hostname);
  await page.getByRole("option", { name: new RegExp(host.hostname) }).first().click();
  await expectVisible(page.getByRole("table", { name: "Hosts of the group" }).getByText(host.hostname), "the host in db");

  step("the dashboard, in light and dark mode");
  await page.goto(`${BASE}/`);
  await expectVisible(page.getByRole("heading", { name: "Dashboard" }), "the dashboard");
  await page.waitForTimeout(1500);
  await shot(page, "dashboard");
  await page.emulateMedia({ colorScheme: "dark" });
  await shot(page, "dashboard-dark");

  step("the admin pages load without errors");
  for (const [path, name] of [
    ["/deployments", "deployments"],
    ["/groups", "groups"],
    ["/users", "users"],
    ["/certificates", "certificates"],
    ["/settings", "settings"],
    ["/notifications", "notifications"],
    ["/security-events", "security-health"],
    ["/audit-log", "audit-log"],
    ["/workers", "workers"],
  ]) {
    await page.goto(`${BASE}${path}`);
    await expectVisible(page.getByRole("heading", { level: 1 }), `the heading of ${path}`);
    await page.waitForLoadState("networkidle", { timeout: 5_000 }).catch(() => {});
    await expectAbsent(page.getByText(/^Could not load/), `an error on ${path}`);
    await shot(page, name);
  }

  step("on a phone: the navigation folds into a menu");
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/`);
  await expectVisible(page.getByRole("heading", { name: "Dashboard" }), "the dashboard on a phone");
  await expectVisible(page.getByRole("button", { name: "Open navigation" }), "the menu button on a phone");
  await shot(page, "dashboard-phone");
  await page.getByRole("button", { name: "Open navigation" }).click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Hosts", exact: true }).last().click();
  await expectVisible(page.getByRole("row").filter({ hasText: host.hostname }), "the host list on a phone");
  await shot(page, "hosts-phone");
  await admin.close();

  step("the operator: first sign-in, then what it can and cannot see");
  const operator = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  const op = await operator.newPage();
  current = op;
  op.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  await signInWithKeyboard(op, "olga", OPERATOR_PASSWORD);
  await changePassword(op, OPERATOR_PASSWORD, NEW_OPERATOR_PASSWORD);
  await enrollTotp(op);
  await expectVisible(op.getByRole("heading", { name: "Dashboard" }), "the operator's dashboard");
  await op.goto(`${BASE}/hosts`);
  await expectVisible(op.getByRole("row").filter({ hasText: "web-1" }), "the web group's host");
  await expectAbsent(op.getByRole("row").filter({ hasText: host.hostname }), "the db group's host");
  const nav = op.getByRole("navigation").first();
  for (const adminOnly of ["Users", "Settings", "Audit log", "Registration tokens"]) {
    await expectAbsent(nav.getByRole("link", { name: adminOnly, exact: true }), `the admin-only ${adminOnly} link`);
  }
  await shot(op, "operator-hosts");
  await op.goto(`${BASE}/hosts/${host.id}`);
  await expectVisible(op.getByText("No such host"), "the db host refused to the operator");
  await op.goto(`${BASE}/users`);
  await expectVisible(op.getByText("This page is for administrators"), "the users page refused to the operator");
  await operator.close();
} catch (e) {
  // What the page showed when a step failed, to see why.
  if (current && !current.isClosed()) {
    await current.screenshot({ path: join(SHOTS, "failure.png") }).catch(() => {});
    const text = await current.locator("body").innerText().catch(() => "");
    console.error(`[ui-e2e] failed at ${current.url()}; the page said:\n${text.slice(0, 3000)}`);
  }
  throw e;
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`[ui-e2e] errors in the page:\n${failures.join("\n")}`);
  process.exit(1);
}
step("all steps passed");
