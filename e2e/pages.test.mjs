// End-to-end test of Tessera's hosted pages (C4) in real headless Chromium, with real mail.
//
// Run through scripts/e2e.sh, which starts aiosmtpd (a real SMTP server writing a Maildir) and
// the server with SMTP_URL pointing at it, PUBLIC_URL = the server's address, PRODUCT_NAME
// "Acme ID" and a 2-second access token, and passes:
//   TESSERA_URL    the server's base URL (http://localhost:<port>)
//   CHROMIUM       the browser binary (Debian's /usr/bin/chromium; no browser download)
//   E2E_MAILDIR    aiosmtpd's Maildir: every mail the server sent is a file in <it>/new
//   E2E_ARTIFACTS  a folder for screenshots taken when a step fails
//
// The steps run in order, like a person would: sign up, follow the verification mail, sign in
// with the keyboard alone, use the settings (password, API key, sessions), sign out, reset a
// forgotten password through the mailed link, and delete the account. Two-factor
// authentication on the way: set up in the settings (the TOTP codes are computed here, RFC 6238,
// from the key the page shows), then signing in with a code, with a recovery code, a wrong code,
// an expired attempt, new recovery codes, and its removal.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

const BASE = process.env.TESSERA_URL ?? 'http://127.0.0.1:8000';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const MAILDIR = process.env.E2E_MAILDIR;
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(process.cwd(), 'e2e-artifacts');
const PRODUCT = 'Acme ID';

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const USER = {
  email: `pages-${run}@example.com`,
  username: `pages_${run}`.slice(0, 32),
  password: 'amber-orchard-compass-17',
};
const CHANGED_PASSWORD = 'silver-meadow-lantern-58';
const RESET_PASSWORD = 'copper-river-thimble-93';

let browser;
let context;
let page;
const pageErrors = [];
const cspViolations = [];
/** What each page looked like, for the project notes (printed at the end). */
const seen = [];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function watch(p) {
  p.on('pageerror', (error) => pageErrors.push(String(error)));
  p.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) cspViolations.push(message.text());
  });
}

/** Runs a step; when it fails, saves a screenshot of every open page before rethrowing. */
function step(name, body) {
  it(name, async () => {
    try {
      await body();
    } catch (error) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      const pages = browser ? browser.contexts().flatMap((c) => c.pages()) : [];
      for (const [i, p] of pages.entries()) {
        const path = join(ARTIFACTS, `pages-${slug}-${i}.png`);
        await p.screenshot({ path, fullPage: true }).catch(() => {});
        console.error(`screenshot: ${path}`);
      }
      throw error;
    }
  });
}

/** Records the visible text of the page's <main> (headings, labels, buttons, notices). */
async function note(label, selector = 'main') {
  const text = (await page.locator(selector).innerText()).replace(/\n{2,}/g, '\n').trim();
  seen.push(`--- ${label} (${new URL(page.url()).pathname})\n${text}`);
}

/** Undoes quoted-printable (soft line breaks, =XX escapes) well enough to find a link. */
function unQuotedPrintable(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The mails aiosmtpd received for `to`, oldest first, as decoded text. */
function mailsTo(to) {
  const folder = join(MAILDIR, 'new');
  let names = [];
  try {
    names = readdirSync(folder);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ path: join(folder, name), time: statSync(join(folder, name)).mtimeMs }))
    .sort((a, b) => a.time - b.time)
    .map(({ path }) => readFileSync(path, 'latin1'))
    .filter((raw) => new RegExp(`^To: .*${to.replace(/[.+]/g, '\\$&')}`, 'mi').test(raw))
    .map((raw) => {
      // Base64 parts, if any, decoded too.
      const decoded = [...raw.matchAll(/Content-Transfer-Encoding: base64\r?\n\r?\n([A-Za-z0-9+/=\r\n]+)/g)]
        .map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64').toString('utf8'))
        .join('\n');
      return `${unQuotedPrintable(raw)}\n${decoded}`;
    });
}

/** Waits for the `n`-th mail to `to` carrying a link to `path`, and returns that link. */
async function mailedLink(to, path, n = 1) {
  assert.ok(MAILDIR, 'E2E_MAILDIR is set by scripts/e2e.sh');
  const pattern = new RegExp(`${BASE.replace(/[.:/]/g, '\\$&')}${path.replace(/\//g, '\\/')}\\?token=[A-Za-z0-9_-]+`);
  for (let i = 0; i < 150; i += 1) {
    const links = mailsTo(to)
      .map((text) => text.match(pattern))
      .filter(Boolean)
      .map((m) => m[0]);
    if (links.length >= n) return links[n - 1];
    await sleep(100);
  }
  throw new Error(`no mail to ${to} with a ${path} link`);
}

// --- TOTP (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits), as an authenticator app does ------

/** The bytes of a base32 (RFC 4648) text; spaces, hyphens and padding ignored. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=-]/g, '').toUpperCase()) {
    const digit = alphabet.indexOf(c);
    if (digit < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
      value &= (1 << bits) - 1;
    }
  }
  return Buffer.from(out);
}

/** The 6-digit code of a base32 secret for a time step (HOTP of the step, RFC 4226). */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

const currentStep = () => Math.floor(Date.now() / 30_000);

/** A 6-digit code that is none of the accepted ones (the steps around now). */
function wrongCode(secret) {
  const now = currentStep();
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totp(secret, now + d)));
  let n = 0;
  while (valid.has(String(n).padStart(6, '0'))) n += 1;
  return String(n).padStart(6, '0');
}

/** The second factor of USER: the key shown at enrolment, the last time step a code was used
 * for (the server refuses a step again), and the recovery codes. */
const MFA = { secret: null, lastStep: 0, codes: [] };

/** A code for a step no code was used for yet: now, or the next step (one step of skew is
 * accepted) when now's was used already. Deterministic, no waiting for the clock. */
function freshCode() {
  const step = Math.max(currentStep(), MFA.lastStep + 1);
  MFA.lastStep = step;
  return totp(MFA.secret, step);
}

/** POST /login then POST /login/mfa from outside the browser; the second answer. */
async function apiSecondStep(factor, mfaToken = null) {
  let token = mfaToken;
  if (token === null) {
    const login = await fetch(`${BASE}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: USER.username, password: USER.password }),
    });
    const body = await login.json();
    assert.equal(login.status, 200);
    assert.equal(body.mfa_required, true);
    token = body.mfa_token;
  }
  const response = await fetch(`${BASE}/login/mfa`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ mfa_token: token, ...factor }),
  });
  return { status: response.status, body: await response.json() };
}

/** Signs out from the settings page and enters the password on the sign-in page; resolves
 * with POST /login's answer (the second step is showing when it asked for one). */
async function passwordStep() {
  await Promise.all([page.waitForURL(/\/signin\?/), page.click('#signout')]);
  await page.fill('#login', USER.username);
  await page.fill('#password', USER.password);
  const [login] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/login` && r.request().method() === 'POST'),
    page.click('#signin-form button[type=submit]'),
  ]);
  return login;
}

/** A request made by the page's own script (same origin, the cookies attached). */
function pageFetch(p, path, init = {}) {
  return p.evaluate(
    async ([url, options]) => {
      const response = await fetch(url, { credentials: 'same-origin', ...options });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    [path, init],
  );
}

/** Signs in on the sign-in page with the mouse and lands on the settings page. */
async function signIn(login, password) {
  await page.goto('/signin');
  await page.fill('#login', login);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${BASE}/account/settings`), page.click('#signin-form button[type=submit]')]);
  await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
}

describe('hosted pages', () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    context = await browser.newContext({ locale: 'en-US', baseURL: BASE });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    watch(page);
  });

  after(async () => {
    await browser?.close();
    if (seen.length > 0) console.log(`\nWhat the pages showed:\n${seen.join('\n')}\n`);
  });

  step('the sign-up page is branded, under a strict CSP, and creates an account', async () => {
    const response = await page.goto('/signup');
    assert.equal(response.status(), 200);
    const headers = response.headers();
    assert.match(headers['content-security-policy'], /script-src 'self';/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
    assert.equal(await page.title(), `Create an account · ${PRODUCT}`);
    assert.equal(await page.locator('#product-name').innerText(), PRODUCT);
    // The brand colour reaches the button through /pages/theme.css.
    const colour = await page.locator('#signup-form button[type=submit]').evaluate((b) => getComputedStyle(b).backgroundColor);
    assert.equal(colour, 'rgb(10, 125, 90)');
    await page.getByLabel('Email').fill(USER.email);
    await page.getByLabel('Username').fill(USER.username);
    await page.getByLabel('Password').fill(USER.password);
    const [created] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/register`),
      page.click('#signup-form button[type=submit]'),
    ]);
    assert.equal(created.status(), 201);
    const notice = page.locator('#signup-form .notice');
    await notice.filter({ hasText: `We mailed a link to ${USER.email}` }).waitFor();
    assert.equal(await notice.getAttribute('role'), 'alert');
    assert.equal(await page.locator('#email').isVisible(), false, 'the finished form hides its fields');
    await note('sign-up, done');
  });

  step('a second sign-up with the same address shows the error beside the form', async () => {
    await page.goto('/signup');
    await page.fill('#email', USER.email);
    await page.fill('#username', `${USER.username.slice(0, 28)}_two`);
    await page.fill('#password', USER.password);
    await page.click('#signup-form button[type=submit]');
    await page.locator('#signup-form .notice[data-kind=error]').filter({ hasText: 'already registered' }).waitFor();
  });

  step('the verification mail links to the verify page; only its button verifies; a reused link is refused', async () => {
    const link = await mailedLink(USER.email, '/email/verify');
    assert.ok(link.startsWith(`${BASE}/email/verify?token=`), link);
    // Opening the link (as a mail scanner would) verifies nothing yet.
    const response = await page.goto(link);
    assert.equal(response.status(), 200);
    await page.locator('h1').filter({ hasText: 'Verify your email address' }).waitFor();
    await note('verify email, opened');
    const [verified] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/email/verify` && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Verify my email address' }).click(),
    ]);
    assert.equal(verified.status(), 200);
    await page.locator('#verify-form .notice[data-kind=ok]').filter({ hasText: 'Email address verified' }).waitFor();
    await note('verify email, done');

    await page.goto(link);
    await page.getByRole('button', { name: 'Verify my email address' }).click();
    await page.locator('#verify-form .notice[data-kind=error]').filter({ hasText: 'This link is not valid' }).waitFor();
    await note('verify email, reused link');
  });

  step('the sign-in form works with the keyboard alone and follows a same-origin return_to', async () => {
    await page.goto('/signin?return_to=%2Faccount%2Fsettings%3Ffrom%3Dkeyboard');
    await note('sign-in');
    // Tab from the top of the page until the first field has focus.
    for (let i = 0; i < 10; i += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement.id === 'login')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement.id), 'login');
    await page.keyboard.type(USER.username);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password', 'focus order: login, password');
    await page.keyboard.type(USER.password);
    await Promise.all([page.waitForURL(`${BASE}/account/settings?from=keyboard`), page.keyboard.press('Enter')]);
    await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
  });

  step('a wrong password is announced in the page language, and an open redirect is not followed', async () => {
    const other = await browser.newContext({ locale: 'zh-CN', baseURL: BASE });
    const p = await other.newPage();
    watch(p);
    await p.goto('/signin?lang=zh&return_to=%2F%2Fevil.example');
    assert.equal(await p.locator('h1').innerText(), '登录');
    assert.equal(await p.locator('body').getAttribute('data-return-to'), '/account/settings');
    await p.fill('#login', USER.email);
    await p.fill('#password', 'not-the-password-at-all');
    await p.click('#signin-form button[type=submit]');
    await p.locator('#signin-form .notice[role=alert]').filter({ hasText: '邮箱、用户名或密码错误' }).waitFor();
    await other.close();
  });

  step('settings show the account and its session; the password changes', async () => {
    await page.goto('/account/settings');
    await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
    assert.equal(await page.locator('#account-email').innerText(), USER.email);
    await page.locator('#sessions tbody tr.current').waitFor();
    assert.match(await page.locator('#sessions tbody tr.current').innerText(), /this session/);
    await note('settings');

    await page.fill('#current-password', USER.password);
    await page.fill('#new-password', CHANGED_PASSWORD);
    const [changed] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/account/password` && r.status() !== 401),
      page.click('#password-form button[type=submit]'),
    ]);
    assert.equal(changed.status(), 200);
    await page.locator('#password-form .notice').filter({ hasText: 'Password changed' }).waitFor();
    USER.password = CHANGED_PASSWORD;

    // A wrong current password is marked on its field.
    await page.fill('#current-password', 'wrong-password-123');
    await page.fill('#new-password', 'another-long-passphrase-1');
    await page.click('#password-form button[type=submit]');
    await page.locator('#current-password-error').filter({ hasText: /./ }).waitFor();
    assert.equal(await page.locator('#current-password').getAttribute('aria-invalid'), 'true');
  });

  step('the sessions list shows another browser, and ending it signs that browser out', async () => {
    const other = await browser.newContext({ locale: 'en-US', baseURL: BASE });
    const p = await other.newPage();
    await p.goto('/signin');
    await p.fill('#login', USER.email);
    await p.fill('#password', USER.password);
    await Promise.all([p.waitForURL(`${BASE}/account/settings`), p.click('#signin-form button[type=submit]')]);
    await page.reload();
    await page.locator('#sessions tbody tr').nth(1).waitFor();
    assert.equal(await page.locator('#sessions tbody tr').count(), 2);
    const [ended] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/sessions/') && r.status() !== 401),
      page.click('#sessions tbody tr:not(.current) button.end-session'),
    ]);
    assert.equal(ended.status(), 204);
    await page.locator('#sessions-notice').filter({ hasText: 'Session ended.' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 1);
    assert.equal((await pageFetch(p, '/profile')).status, 401);
    await other.close();
  });

  step('an API key is created, shown once, works, and is deleted', async () => {
    await page.fill('#key-name', 'e2e-pages');
    await page.check('#key-form input[value="agent:chat"]');
    const [created] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/api-keys` && r.request().method() === 'POST' && r.status() !== 401),
      page.click('#key-form button[type=submit]'),
    ]);
    assert.equal(created.status(), 201);
    await page.locator('#new-key').waitFor();
    const key = (await page.locator('#new-key-value').innerText()).trim();
    assert.match(key, /^tsk_[A-Za-z0-9]{49}$/);
    const row = page.locator('#api-keys tbody tr').filter({ hasText: 'e2e-pages' });
    await row.waitFor();
    const listed = await row.innerText();
    assert.match(listed, /profile:read agent:chat|agent:chat profile:read/);
    assert.ok(!listed.includes(key), 'the list never shows the secret');
    await note('settings, API key created');
    const asProgram = await fetch(`${BASE}/profile`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(asProgram.status, 200);

    const [deleted] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api-keys/') && r.status() !== 401),
      row.locator('button.delete-key').click(),
    ]);
    assert.equal(deleted.status(), 204);
    await page.locator('#key-form .notice').filter({ hasText: 'API key deleted.' }).waitFor();
    await row.waitFor({ state: 'detached' });
    assert.equal(await page.locator('#new-key').isVisible(), false);
    const refused = await fetch(`${BASE}/profile`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(refused.status, 401);
  });

  step('the email address changes once the link mailed to the new address is followed', async () => {
    // The address was verified above: asking for a new link says so.
    await page.click('#resend-verification');
    await page.locator('#resend-notice').filter({ hasText: 'verified already' }).waitFor();

    const newEmail = `pages-new-${run}@example.com`;
    await page.fill('#new-email', newEmail);
    await page.fill('#email-password', USER.password);
    await page.click('#email-form button[type=submit]');
    await page.locator('#email-form .notice').filter({ hasText: 'A link to confirm the new address' }).waitFor();
    const link = await mailedLink(newEmail, '/email/verify');
    await page.goto(link);
    await page.getByRole('button', { name: 'Verify my email address' }).click();
    await page.locator('#verify-form .notice[data-kind=ok]').filter({ hasText: 'Email address changed' }).waitFor();
    USER.email = newEmail;
    await page.goto('/account/settings');
    await page.locator('#account-email').filter({ hasText: newEmail }).waitFor();
  });

  step('the TOTP helper of this test computes RFC 6238 codes', async () => {
    // RFC 6238 appendix B, SHA-1 key "12345678901234567890": T = 59 s and 1111111109 s.
    const key = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    assert.equal(base32Decode(key).toString('latin1'), '12345678901234567890');
    assert.equal(totp(key, Math.floor(59 / 30)), '287082');
    assert.equal(totp(key, Math.floor(1111111109 / 30)), '081804');
  });

  step('two-factor authentication is set up in the settings: QR code, key, first code, recovery codes shown once', async () => {
    await page.goto('/account/settings');
    await page.locator('#mfa-status').filter({ hasText: 'Off: your password alone signs you in.' }).waitFor();
    assert.equal(await page.locator('#mfa-on').isVisible(), false);
    await page.fill('#mfa-setup-password', USER.password);
    const [started] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/account/mfa/totp` && r.request().method() === 'POST' && r.status() !== 401),
      page.getByRole('button', { name: 'Set up an authenticator app' }).click(),
    ]);
    assert.equal(started.status(), 200);
    const enrolment = await started.json();
    await page.locator('#mfa-enrol').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-confirm-code', 'focus on the code field');
    // The QR code is the server's SVG as an image (the policy allows data: images only for this).
    const src = await page.locator('#mfa-qr').getAttribute('src');
    assert.ok(src.startsWith('data:image/svg+xml;base64,'), src.slice(0, 40));
    assert.equal(Buffer.from(src.split(',')[1], 'base64').toString('utf8'), enrolment.qr_svg);
    await page.waitForFunction(() => {
      const img = document.getElementById('mfa-qr');
      return img.complete && img.naturalWidth > 0;
    });
    assert.equal(await page.locator('#mfa-qr').getAttribute('alt'), 'QR code to add this account to an authenticator app');
    MFA.secret = (await page.locator('#mfa-secret').innerText()).replace(/\s+/g, '');
    assert.match(MFA.secret, /^[A-Z2-7]{32}$/);
    assert.equal(MFA.secret, enrolment.secret);
    assert.equal(await page.locator('#mfa-confirm-code').getAttribute('autocomplete'), 'one-time-code');
    await note('settings, two-factor set-up', '#mfa-section');

    // A wrong first code is marked on its field; nothing is enrolled.
    await page.fill('#mfa-confirm-code', wrongCode(MFA.secret));
    await page.click('#mfa-confirm-form button[type=submit]');
    await page.locator('#mfa-confirm-code-error').filter({ hasText: /./ }).waitFor();
    assert.equal(await page.locator('#mfa-confirm-code').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#mfa-confirm-form .notice').getAttribute('data-kind'), 'error');

    await page.fill('#mfa-confirm-code', freshCode());
    const [confirmed] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/account/mfa/totp/confirm` && r.status() !== 401),
      page.click('#mfa-confirm-form button[type=submit]'),
    ]);
    assert.equal(confirmed.status(), 200);
    await page.locator('#recovery-codes').waitFor();
    MFA.codes = await page.locator('#recovery-code-list li').allInnerTexts();
    assert.equal(MFA.codes.length, 10);
    for (const code of MFA.codes) assert.match(code, /^[0-9a-z]{4}(-[0-9a-z]{4}){3}$/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'recovery-codes');
    assert.equal(await page.locator('#mfa-enrol').isVisible(), false);
    assert.equal(await page.locator('#mfa-secret').innerText(), '', 'the key is gone from the page');
    assert.match(await page.locator('#mfa-status').innerText(), /^On: .* Recovery codes left: 10\.$/);
    await note('settings, recovery codes', '#mfa-section');

    await page.getByRole('button', { name: 'I have saved them' }).click();
    await page.locator('#mfa-notice').filter({ hasText: 'Two-factor authentication is on.' }).waitFor();
    assert.equal(await page.locator('#recovery-codes').isVisible(), false);
    assert.equal(await page.locator('#recovery-code-list li').count(), 0, 'shown once');
    assert.match(await page.locator('#mfa-status').innerText(), /^On: signing in asks for a code/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-status');
    await note('settings, two-factor on', '#mfa-section');
  });

  step('signing in asks for a code after the password; a wrong code is refused; the right one signs in', async () => {
    const login = await passwordStep();
    assert.equal(login.status(), 200);
    assert.equal((await login.json()).mfa_required, true);
    await page.locator('#mfa-form').waitFor();
    assert.equal(await page.locator('#signin-form').isVisible(), false);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-code', 'focus on the code field');
    const code = page.locator('#mfa-code');
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await code.getAttribute('inputmode'), 'numeric');
    assert.equal(await page.locator('#recovery-code').isVisible(), false);
    assert.equal((await pageFetch(page, '/profile')).status, 401, 'no session before the code');
    await note('sign-in, code step', '#mfa-form');

    await page.keyboard.type(wrongCode(MFA.secret));
    await page.keyboard.press('Enter');
    const notice = page.locator('#mfa-form .notice[role=alert]');
    await notice.filter({ hasText: 'The code is not correct or was used already. Attempts left: 4.' }).waitFor();
    assert.equal(await code.getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-code');
    await note('sign-in, wrong code', '#mfa-form');

    await page.keyboard.type(freshCode()); // the wrong code is selected: typing replaces it
    await Promise.all([page.waitForURL(`${BASE}/account/settings`), page.keyboard.press('Enter')]);
    await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
  });

  step('a recovery code signs in instead, once', async () => {
    await passwordStep();
    await page.locator('#mfa-form').waitFor();
    await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'recovery-code');
    assert.equal(await page.locator('#mfa-code').isVisible(), false);
    assert.equal(await page.locator('#mfa-switch').innerText(), 'Use your authenticator app instead');
    await note('sign-in, recovery code step', '#mfa-form');
    await page.keyboard.type(MFA.codes[0].toUpperCase()); // case does not matter
    await Promise.all([page.waitForURL(`${BASE}/account/settings`), page.keyboard.press('Enter')]);
    await page.locator('#mfa-status').filter({ hasText: 'Recovery codes left: 9.' }).waitFor();

    const reused = await apiSecondStep({ recovery_code: MFA.codes[0] });
    assert.equal(reused.status, 401);
    assert.equal(reused.body.error, 'invalid_mfa_code');
  });

  step('a used-up or expired sign-in attempt goes back to the password step', async () => {
    // Another client spends the attempt's five codes: the page's next code is refused with
    // invalid_mfa_token, even a right one.
    const login = await passwordStep();
    const { mfa_token: token } = await login.json();
    for (let i = 0; i < 5; i += 1) {
      assert.equal((await apiSecondStep({ code: wrongCode(MFA.secret) }, token)).status, 401);
    }
    await page.fill('#mfa-code', totp(MFA.secret, currentStep()));
    await page.keyboard.press('Enter');
    await page
      .locator('#signin-form .notice[role=alert]')
      .filter({ hasText: 'This sign-in attempt expired, start again.' })
      .waitFor();
    assert.equal(await page.locator('#mfa-form').isVisible(), false);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
    assert.equal(await page.locator('#login').inputValue(), USER.username, 'the login is kept');
    await note('sign-in, attempt expired', '#signin-form');

    // The page's own fifth wrong code (attempts_left 0) goes back at once too.
    await page.fill('#password', USER.password);
    const [again] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/login` && r.request().method() === 'POST'),
      page.keyboard.press('Enter'),
    ]);
    const second = (await again.json()).mfa_token;
    for (let i = 0; i < 4; i += 1) {
      assert.equal((await apiSecondStep({ code: wrongCode(MFA.secret) }, second)).status, 401);
    }
    await page.locator('#mfa-form').waitFor();
    await page.fill('#mfa-code', wrongCode(MFA.secret));
    await page.keyboard.press('Enter');
    await page.locator('#signin-form .notice').filter({ hasText: 'This sign-in attempt expired' }).waitFor();
    assert.equal(await page.locator('#mfa-form').isVisible(), false);

    // Start again: the password, then a recovery code.
    await page.fill('#password', USER.password);
    await page.keyboard.press('Enter');
    await page.locator('#mfa-form').waitFor();
    await page.click('#mfa-switch');
    await page.fill('#recovery-code', MFA.codes[1]);
    await Promise.all([page.waitForURL(`${BASE}/account/settings`), page.keyboard.press('Enter')]);
    await page.locator('#mfa-status').filter({ hasText: 'Recovery codes left: 8.' }).waitFor();
  });

  step('new recovery codes replace the old ones; removing two-factor takes a confirmation; the password alone signs in again', async () => {
    await page.fill('#recovery-password', USER.password);
    await page.getByRole('button', { name: 'New recovery codes' }).click();
    await page.locator('#recovery-codes').waitFor();
    const fresh = await page.locator('#recovery-code-list li').allInnerTexts();
    assert.equal(fresh.length, 10);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'recovery-codes');
    assert.ok(fresh.every((code) => !MFA.codes.includes(code)));
    await page.getByRole('button', { name: 'I have saved them' }).click();
    await page.locator('#recovery-codes').waitFor({ state: 'hidden' });
    await page.locator('#mfa-on').waitFor();
    assert.match(await page.locator('#mfa-status').innerText(), /Recovery codes left: 10\.$/);
    assert.equal(await page.locator('#mfa-notice').innerText(), '', 'no "is on" for new codes');
    const old = await apiSecondStep({ recovery_code: MFA.codes[2] });
    assert.equal(old.status, 401, 'an old code stopped working');
    MFA.codes = fresh;

    // A wrong password is marked on its field.
    await page.fill('#mfa-remove-password', 'not-the-password-at-all');
    await page.click('#mfa-remove-form button[type=submit]');
    await page.locator('#mfa-remove-confirm').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-remove-confirm-button');
    await note('settings, two-factor removal confirmation', '#mfa-section');
    await page.click('#mfa-remove-cancel');
    assert.equal(await page.locator('#mfa-remove-confirm').isVisible(), false);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'mfa-remove-password');
    await page.click('#mfa-remove-form button[type=submit]');
    await page.click('#mfa-remove-confirm-button');
    await page.locator('#mfa-remove-password-error').filter({ hasText: /./ }).waitFor();
    assert.equal(await page.locator('#mfa-remove-password').getAttribute('aria-invalid'), 'true');

    await page.fill('#mfa-remove-password', USER.password);
    await page.click('#mfa-remove-form button[type=submit]');
    const [removed] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/account/mfa/totp` && r.request().method() === 'DELETE' && r.status() !== 401),
      page.click('#mfa-remove-confirm-button'),
    ]);
    assert.equal(removed.status(), 200);
    await page.locator('#mfa-notice').filter({ hasText: 'Two-factor authentication removed' }).waitFor();
    await page.locator('#mfa-status').filter({ hasText: 'Off: your password alone signs you in.' }).waitFor();
    assert.equal(await page.locator('#mfa-off').isVisible(), true);

    await Promise.all([page.waitForURL(/\/signin\?/), page.click('#signout')]);
    await signIn(USER.username, USER.password);
  });

  step('signing out goes to the sign-in page and ends the session', async () => {
    await Promise.all([page.waitForURL(/\/signin\?/), page.click('#signout')]);
    assert.equal((await pageFetch(page, '/profile')).status, 401);
    // Settings without a session send the browser to sign in, coming back afterwards.
    await page.goto('/account/settings');
    await page.waitForURL(`${BASE}/signin?lang=en&return_to=%2Faccount%2Fsettings`);
  });

  step('a forgotten password is reset through the mailed link (real SMTP), once', async () => {
    await page.goto('/password/forgot');
    await page.fill('#email', USER.email);
    await page.click('#forgot-form button[type=submit]');
    await page.locator('#forgot-form .notice').filter({ hasText: 'If an account uses this address' }).waitFor();
    await note('forgot password, sent');
    const link = await mailedLink(USER.email, '/password/reset');
    const subject = mailsTo(USER.email).find((m) => m.includes('/password/reset')).match(/^Subject: (.*)$/m)[1];
    assert.match(subject, /Acme ID/, 'PRODUCT_NAME is in the mail');

    await page.goto(link);
    await page.locator('h1').filter({ hasText: 'Set a new password' }).waitFor();
    await note('reset password, opened');
    // Two different passwords are caught on the page.
    await page.fill('#new-password', RESET_PASSWORD);
    await page.fill('#confirm-password', `${RESET_PASSWORD}x`);
    await page.click('#reset-form button[type=submit]');
    await page.locator('#confirm-password-error').filter({ hasText: 'differ' }).waitFor();
    await page.fill('#confirm-password', RESET_PASSWORD);
    const [reset] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/password/reset` && r.request().method() === 'POST'),
      page.click('#reset-form button[type=submit]'),
    ]);
    assert.equal(reset.status(), 200);
    await page.locator('#reset-form .notice[data-kind=ok]').filter({ hasText: 'Password set' }).waitFor();
    await note('reset password, done');
    USER.password = RESET_PASSWORD;

    await page.goto(link);
    await page.fill('#new-password', 'yet-another-passphrase-4');
    await page.fill('#confirm-password', 'yet-another-passphrase-4');
    await page.click('#reset-form button[type=submit]');
    await page.locator('#reset-form .notice[data-kind=error]').filter({ hasText: 'This link is not valid' }).waitFor();
    await note('reset password, reused link');

    await signIn(USER.email, RESET_PASSWORD);
  });

  step('the account is deleted after a confirmation step', async () => {
    await page.fill('#delete-password', USER.password);
    await page.click('#delete-form button[type=submit]');
    await page.locator('#delete-confirm').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'delete-confirm-button');
    await note('settings, delete confirmation');
    await Promise.all([page.waitForURL(/\/signin\?/), page.click('#delete-confirm-button')]);
    const login = await fetch(`${BASE}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: USER.email, password: USER.password }),
    });
    assert.equal(login.status, 401);
  });

  step('no script error and no CSP violation on the way', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(cspViolations, []);
  });
});
