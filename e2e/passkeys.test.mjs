// End-to-end test of passkeys (C3) in real headless Chromium with the DevTools virtual
// authenticator (CTAP2, internal transport, resident keys, user verification).
//
// Run through scripts/e2e.sh, which starts the server with PUBLIC_URL = its own address on
// `localhost` (a WebAuthn RP ID is a domain, never an IP address, so the browser must use the
// same host as PUBLIC_URL) and passes TESSERA_URL, CHROMIUM and E2E_ARTIFACTS. It runs this file
// twice: against one server, then against nginx in front of two instances sharing PostgreSQL
// and Redis (TESSERA_URL = nginx's address, round-robin), and then checks in nginx's access log
// that the ceremonies below reached both instances.
//
// The steps, as a person would take them: sign in with the password, add a passkey in the
// settings, sign out, sign in with the passkey alone, sign in with the password and the passkey
// as the second step, remove the passkey (password required), and sign in with the password
// alone again.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

const BASE = process.env.TESSERA_URL ?? 'http://localhost:8000';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(process.cwd(), 'e2e-artifacts');

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const USER = {
  email: `passkey-${run}@example.com`,
  username: `passkey_${run}`.slice(0, 32),
  password: 'violet-harbour-kettle-42',
};

let browser;
let page;
let cdp;
let authenticatorId;
const pageErrors = [];
const cspViolations = [];

function step(name, body) {
  it(name, async () => {
    try {
      await body();
    } catch (error) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      const path = join(ARTIFACTS, `passkeys-${slug}.png`);
      await page?.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`screenshot: ${path}`);
      throw error;
    }
  });
}

/** The virtual authenticator's credentials (what it holds, not what the server has). */
async function heldCredentials() {
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  return credentials;
}

async function signOut() {
  await Promise.all([page.waitForURL(/\/signin/), page.click('#signout')]);
}

/** The password step on the sign-in page; resolves with POST /login's response (its body is
 * readable only when no navigation followed, i.e. when a second step is asked for). */
async function passwordStep() {
  await page.goto('/signin');
  await page.fill('#login', USER.username);
  await page.fill('#password', USER.password);
  const [login] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/login` && r.request().method() === 'POST'),
    page.click('#signin-form button[type=submit]'),
  ]);
  return login;
}

async function onSettings() {
  await page.waitForURL(`${BASE}/account/settings`);
  await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
}

describe('passkeys', () => {
  before(async () => {
    const registered = await fetch(`${BASE}/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(USER),
    });
    assert.equal(registered.status, 201, await registered.text());
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    const context = await browser.newContext({ locale: 'en-US', baseURL: BASE });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) cspViolations.push(message.text());
      if (message.type() === 'warning') console.error(`page: ${message.text()}`);
    });
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
  });

  after(async () => {
    await browser?.close();
  });

  step('a passkey is added in the settings with a name and the password', async () => {
    await passwordStep();
    await onSettings();
    await page.locator('#passkeys tbody').filter({ hasText: 'No passkeys yet' }).waitFor();
    await page.fill('#passkey-name', 'Work laptop');
    await page.fill('#passkey-password', USER.password);
    await page.click('#passkey-form button[type=submit]');
    await page.locator('#passkeys-notice[data-kind=ok]').filter({ hasText: 'Passkey added' }).waitFor();
    const row = page.locator('#passkeys tbody tr[data-passkey-id]');
    assert.equal(await row.count(), 1);
    assert.match(await row.innerText(), /Work laptop/);
    assert.match(await row.innerText(), /never/i);
    const held = await heldCredentials();
    assert.equal(held.length, 1);
    assert.equal(held[0].isResidentCredential, true, 'a discoverable credential');
    assert.equal(held[0].rpId, new URL(BASE).hostname);
  });

  step('a wrong password adds nothing', async () => {
    await page.fill('#passkey-name', 'Other');
    await page.fill('#passkey-password', 'not-the-password-at-all');
    await page.click('#passkey-form button[type=submit]');
    await page.locator('#passkey-form .notice[data-kind=error]').waitFor();
    assert.equal(await page.locator('#passkeys tbody tr[data-passkey-id]').count(), 1);
    assert.equal((await heldCredentials()).length, 1);
  });

  step('signed out, the passkey alone signs in (no password)', async () => {
    await signOut();
    await page.goto('/signin');
    await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/login/passkey/finish` && r.status() === 200),
      page.click('#passkey-signin'),
    ]);
    await onSettings();
    const row = page.locator('#passkeys tbody tr[data-passkey-id]');
    await row.filter({ hasNotText: /never/i }).waitFor();
    const held = await heldCredentials();
    assert.ok(held[0].signCount >= 1, 'the authenticator signed');
  });

  step('with a passkey, the password asks for it as the second step', async () => {
    await signOut();
    const login = await (await passwordStep()).json();
    assert.equal(login.mfa_required, true);
    assert.deepEqual(login.methods, ['passkey']);
    assert.equal(login.access_token, undefined);
    await page.locator('#mfa-form').waitFor();
    assert.equal(await page.locator('#mfa-passkey').isVisible(), true);
    assert.equal(await page.locator('#mfa-code').isVisible(), false, 'no code field without an app');
    await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/login/mfa` && r.status() === 200),
      page.click('#mfa-passkey'),
    ]);
    await onSettings();
  });

  step('the passkey is removed with the password, and the password alone signs in again', async () => {
    await page.click('#passkeys .remove-passkey');
    await page.locator('#passkey-remove').waitFor();
    await page.fill('#passkey-remove-password', 'not-the-password-at-all');
    await page.click('#passkey-remove-form button[type=submit]');
    await page.locator('#passkey-remove-form .notice[data-kind=error]').waitFor();
    await page.fill('#passkey-remove-password', USER.password);
    await page.click('#passkey-remove-form button[type=submit]');
    await page.locator('#passkeys-notice[data-kind=ok]').filter({ hasText: 'Passkey removed' }).waitFor();
    await page.locator('#passkeys tbody').filter({ hasText: 'No passkeys yet' }).waitFor();
    await signOut();
    await passwordStep();
    await onSettings();
    // The authenticator still holds the credential, but the server no longer knows it.
    await signOut();
    await page.goto('/signin');
    await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/login/passkey/finish` && r.status() === 401),
      page.click('#passkey-signin'),
    ]);
    await page.locator('#passkey-signin-notice[data-kind=error]').waitFor();
  });

  step('no script error and no CSP violation on the way', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(cspViolations, []);
  });
});
