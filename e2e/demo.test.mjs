// End-to-end test of Tessera's browser demo (GET /) in real headless Chromium.
//
// Run through scripts/e2e.sh, which starts the server with a 2-second access token and passes:
//   TESSERA_URL    the server's base URL (http://localhost:<port>)
//   CHROMIUM       the browser binary (Debian's /usr/bin/chromium; no browser download)
//   E2E_ARTIFACTS  a folder for screenshots taken when a step fails
//
// The steps run in order on one page, like a person would: each builds on the previous one.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

const BASE = process.env.TESSERA_URL ?? 'http://127.0.0.1:8000';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(process.cwd(), 'e2e-artifacts');
/** The server's ACCESS_TOKEN_EXPIRE_SECONDS in scripts/e2e.sh. */
const ACCESS_TTL_MS = 2_000;

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const USER = {
  email: `demo-${run}@example.com`,
  username: `demo_${run}`.slice(0, 32),
  password: 'violet-harbour-lantern-42',
};

let browser;
/** The main context and page, and what they saw. */
let context;
let page;
const requests = [];
const pageErrors = [];
const cspViolations = [];
/** The token values the server set as cookies (captured from the browser's cookie jar). */
const seenTokens = new Set();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function newDemoContext() {
  const ctx = await browser.newContext({ locale: 'en-US', baseURL: BASE });
  ctx.setDefaultTimeout(10_000);
  return ctx;
}

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
        const path = join(ARTIFACTS, `${slug}-${i}.png`);
        await p.screenshot({ path, fullPage: true }).catch(() => {});
        console.error(`screenshot: ${path}`);
      }
      throw error;
    }
  });
}

async function tokenCookies(ctx) {
  const cookies = await ctx.cookies(BASE);
  const byName = Object.fromEntries(cookies.map((c) => [c.name, c]));
  for (const c of cookies) if (c.name.endsWith('_token') && c.value) seenTokens.add(c.value);
  // The refresh cookie has Path=/refresh, so it is listed for that URL only.
  const refresh = (await ctx.cookies(`${BASE}/refresh`)).find((c) => c.name === 'refresh_token');
  if (refresh?.value) seenTokens.add(refresh.value);
  return { access: byName.access_token, refresh };
}

async function logIn(p, login, password) {
  await p.fill('#login-form [name=login]', login);
  await p.fill('#login-form [name=password]', password);
  const [response] = await Promise.all([
    p.waitForResponse((r) => r.url() === `${BASE}/login`),
    p.click('#login-form button[type=submit]'),
  ]);
  assert.equal(response.status(), 200);
  await p.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
  return response.json();
}

async function chat(p, message) {
  await p.fill('#chat-message', message);
  await p.click('#chat-send');
  await p.locator('#chat-log .reply').filter({ hasText: `AI reply: ${message}` }).waitFor();
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

async function expireAccessToken() {
  await sleep(ACCESS_TTL_MS + 700);
}

describe('browser demo', () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    context = await newDemoContext();
    page = await context.newPage();
    watch(page);
    page.on('request', (r) => requests.push({ method: r.method(), path: new URL(r.url()).pathname }));
  });

  after(async () => {
    await browser?.close();
  });

  step('serves the page with a strict CSP and its security headers', async () => {
    const response = await page.goto('/');
    assert.equal(response.status(), 200);
    const headers = response.headers();
    assert.match(headers['content-type'], /^text\/html; charset=utf-8$/);
    assert.match(headers['content-security-policy'], /script-src 'self';/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['x-frame-options'], 'DENY');
    await page.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    assert.equal(await page.locator('#signed-out').isVisible(), true);
    // The hosted pages (C4) are one link away.
    const links = await page.locator('#hosted-pages a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(links, ['/signin', '/signup', '/account/settings']);
    assert.equal(await page.locator('#notice').isVisible(), false);
  });

  step('registers through the form', async () => {
    await page.fill('#register-form [name=email]', USER.email);
    await page.fill('#register-form [name=username]', USER.username);
    await page.fill('#register-form [name=password]', USER.password);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/register`),
      page.click('#register-form button[type=submit]'),
    ]);
    assert.equal(response.status(), 201);
    await page.locator('#notice').filter({ hasText: `Registered ${USER.username}` }).waitFor();
    // A second registration with the same email is refused, and the page says why.
    await page.fill('#register-form [name=email]', USER.email);
    await page.fill('#register-form [name=username]', `${USER.username.slice(0, 28)}_two`);
    await page.fill('#register-form [name=password]', USER.password);
    await page.click('#register-form button[type=submit]');
    await page.locator('#notice[data-kind=error]').waitFor();
  });

  step('logs in: HttpOnly cookies for http on localhost, the CSRF token in the body', async () => {
    const body = await logIn(page, USER.email, USER.password);
    assert.equal(typeof body.csrf_token, 'string');
    const { access, refresh } = await tokenCookies(context);
    assert.ok(access, 'access_token cookie set');
    assert.equal(access.httpOnly, true);
    assert.equal(access.secure, false);
    assert.equal(access.sameSite, 'Lax');
    assert.equal(access.path, '/');
    assert.ok(refresh, 'refresh_token cookie set');
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.path, '/refresh');
    // The default TOKEN_DELIVERY=both also puts the tokens in the body; the page ignores them.
    // The CSRF token must not be stored either.
    for (const token of [body.access_token, body.refresh_token, body.csrf_token]) if (token) seenTokens.add(token);
    assert.equal(await page.locator('#notice').isVisible(), false);
  });

  step('chats: the reply shows "AI reply: ..."', async () => {
    await chat(page, 'hello from chromium');
    assert.equal(await page.locator('#notice').isVisible(), false);
  });

  step('no token is readable by script: not in document.cookie, not in web storage', async () => {
    await tokenCookies(context);
    assert.ok(seenTokens.size >= 2);
    const visible = await page.evaluate(() => {
      const dump = (storage) => Array.from({ length: storage.length }, (_, i) => {
        const key = storage.key(i);
        return `${key}=${storage.getItem(key)}`;
      });
      return { cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage) };
    });
    assert.doesNotMatch(visible.cookie, /access_token|refresh_token/);
    for (const token of seenTokens) {
      assert.ok(!visible.cookie.includes(token), 'a token is in document.cookie');
      for (const entry of [...visible.local, ...visible.session]) {
        assert.ok(!entry.includes(token), 'a token is in web storage');
      }
    }
    for (const entry of [...visible.local, ...visible.session]) assert.doesNotMatch(entry, /token/i);
  });

  step('a request from the page without the CSRF header is refused with 403 csrf_failed', async () => {
    // A chat through the page first, so the access cookie is fresh (it lives 2 s here) and
    // the forged requests below are judged on their CSRF header, not on an expired token.
    await chat(page, 'just before the forgery');
    const init = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"message":"forged"}' };
    const missing = await pageFetch(page, '/agent/chat', init);
    assert.equal(missing.status, 403);
    assert.equal(missing.body.error, 'csrf_failed');
    const wrong = await pageFetch(page, '/agent/chat', { ...init, headers: { ...init.headers, 'X-CSRF-Token': 'nope' } });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.error, 'csrf_failed');
  });

  step('after the access token expires, chat still works: one transparent refresh', async () => {
    await expireAccessToken();
    // Max-Age=2: the browser has dropped the access cookie; the refresh cookie remains.
    const jar = await tokenCookies(context);
    assert.equal(jar.access, undefined);
    assert.ok(jar.refresh);
    const from = requests.length;
    const responses = [];
    const onResponse = (r) => responses.push({ path: new URL(r.url()).pathname, status: r.status() });
    page.on('response', onResponse);
    await chat(page, 'still here after expiry');
    page.off('response', onResponse);
    const sent = requests.slice(from).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(sent, ['POST /agent/chat', 'POST /refresh', 'POST /agent/chat']);
    assert.deepEqual(
      responses.map((r) => `${r.path} ${r.status}`),
      ['/agent/chat 401', '/refresh 200', '/agent/chat 200'],
    );
    assert.equal(await page.locator('#notice').isVisible(), false, 'no visible error');
    assert.ok((await tokenCookies(context)).access, 'a new access cookie');
  });

  step('an expired token still sent as a cookie: token_expired, and concurrent calls share one refresh', async () => {
    const stale = (await tokenCookies(context)).access;
    await expireAccessToken();
    // Put the expired token back, so the server sees it and answers 401 token_expired.
    await context.addCookies([{ ...stale, expires: -1 }]);
    const from = requests.length;
    const errors = [];
    const onResponse = async (r) => {
      if (r.status() === 401) errors.push((await r.json().catch(() => ({}))).error);
    };
    page.on('response', onResponse);
    await page.fill('#chat-message', 'two at once');
    // Two protected requests leave in the same task: both meet the expired token.
    await page.evaluate(() => {
      document.querySelector('#chat-send').click();
      document.querySelector('#sessions-reload').click();
    });
    await page.locator('#chat-log .reply').filter({ hasText: 'AI reply: two at once' }).waitFor();
    await page.locator('#sessions tbody tr').first().waitFor();
    const sent = await until(() => {
      const list = requests.slice(from).map((r) => `${r.method} ${r.path}`);
      return list.filter((r) => r === 'GET /sessions').length >= 2 && list;
    });
    page.off('response', onResponse);
    assert.equal(sent.filter((r) => r === 'POST /refresh').length, 1, `one refresh: ${sent.join(', ')}`);
    assert.equal(sent.filter((r) => r === 'POST /agent/chat').length, 2, sent.join(', '));
    assert.equal(sent.filter((r) => r === 'GET /sessions').length, 2, sent.join(', '));
    assert.ok(errors.includes('token_expired'), `401s: ${errors.join(', ')}`);
    assert.equal(await page.locator('#notice').isVisible(), false, 'no visible error');
  });

  step('the sessions list shows this session and another; ending the other one signs it out', async () => {
    const other = await newDemoContext();
    const otherPage = await other.newPage();
    watch(otherPage);
    await otherPage.goto('/');
    await logIn(otherPage, USER.username, USER.password);
    await chat(otherPage, 'from the second browser');

    await page.click('#sessions-reload');
    await page.locator('#sessions tbody tr').nth(1).waitFor();
    assert.equal(await page.locator('#sessions tbody tr').count(), 2);
    assert.equal(await page.locator('#sessions tbody tr.current').count(), 1);
    // Each row shows the session's user agent, the browser's own.
    assert.match(await page.locator('#sessions tbody tr.current').innerText(), /HeadlessChrome/);

    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE' && r.status() !== 401),
      page.click('#sessions tbody tr:not(.current) button.end-session'),
    ]);
    assert.equal(response.status(), 204);
    await page.locator('#notice').filter({ hasText: 'Session ended.' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 1);
    assert.equal(await page.locator('#sessions tbody tr.current').count(), 1);

    // The ended session's page can no longer act: its refresh fails and it shows signed out.
    await otherPage.fill('#chat-message', 'am I still in?');
    await otherPage.click('#chat-send');
    await otherPage.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    await otherPage.locator('#notice').filter({ hasText: 'session has ended' }).waitFor();
    const profile = await pageFetch(otherPage, '/profile');
    assert.equal(profile.status, 401);
    await other.close();
  });

  step('the API keys panel creates a key shown once, lists it without its secret, and revokes it', async () => {
    await page.fill('#key-name', 'e2e-bot');
    await page.check('#key-form input[value="profile:read"]');
    const [created] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/api-keys` && r.request().method() === 'POST' && r.status() !== 401),
      page.click('#key-create'),
    ]);
    assert.equal(created.status(), 201);
    await page.locator('#new-key').waitFor();
    const key = (await page.locator('#new-key-value').innerText()).trim();
    assert.match(key, /^tsk_[A-Za-z0-9]{49}$/);
    const row = page.locator('#api-keys tbody tr').filter({ hasText: 'e2e-bot' });
    await row.waitFor();
    const listed = await row.innerText();
    assert.match(listed, /agent:chat profile:read/);
    assert.ok(!listed.includes(key), 'the list never shows the secret');
    assert.ok(listed.includes(key.slice(0, 12)), 'but shows its prefix');
    // The key works for a program, outside the browser.
    const asProgram = await fetch(`${BASE}/profile`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(asProgram.status, 200);
    assert.equal((await asProgram.json()).username, USER.username);

    const [revoked] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api-keys/') && r.status() !== 401),
      row.locator('button.revoke-key').click(),
    ]);
    assert.equal(revoked.status(), 204);
    await page.locator('#notice').filter({ hasText: 'API key revoked.' }).waitFor();
    await row.waitFor({ state: 'detached' });
    const refused = await fetch(`${BASE}/profile`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(refused.status, 401);
  });

  step('logs out: the cookies are cleared and a protected call fails', async () => {
    const [response] = await Promise.all([
      // (A 401 first is the expired access token, refreshed and retried.)
      page.waitForResponse((r) => r.url() === `${BASE}/logout` && r.status() !== 401),
      page.click('#logout'),
    ]);
    assert.equal(response.status(), 200);
    await page.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    const jar = await tokenCookies(context);
    assert.equal(jar.access, undefined);
    assert.equal(jar.refresh, undefined);
    const profile = await pageFetch(page, '/profile');
    assert.equal(profile.status, 401);
    assert.equal(profile.body.error, 'not_authenticated');
    await page.locator('#chat-log li').first().waitFor({ state: 'detached' });
  });

  step('a reload keeps the session (even after the access token expired); log out everywhere ends every session', async () => {
    const other = await newDemoContext();
    const otherPage = await other.newPage();
    watch(otherPage);
    await otherPage.goto('/');
    await logIn(otherPage, USER.email, USER.password);

    await logIn(page, USER.email, USER.password);
    // The CSRF token lived in the old page's memory; the reloaded page gets it back through the
    // refresh cookie (GET /refresh/csrf) and is signed in again without a login.
    const [restore] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${BASE}/refresh/csrf`),
      page.reload(),
    ]);
    assert.equal(restore.status(), 200);
    await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
    await chat(page, 'after a reload');
    // Again once the access cookie has expired (2 s): the page refreshes, then carries on.
    await sleep(2500);
    const refreshes = [];
    const onRequest = (r) => r.url() === `${BASE}/refresh` && r.method() === 'POST' && refreshes.push(r);
    page.on('request', onRequest);
    await page.reload();
    await page.locator('#status').filter({ hasText: `Signed in as ${USER.username}` }).waitFor();
    page.off('request', onRequest);
    assert.equal(refreshes.length, 1, 'one refresh after the reload');
    await chat(page, 'after an expired reload');
    const storage = await page.evaluate(() => ({
      cookie: document.cookie,
      entries: localStorage.length + sessionStorage.length,
    }));
    assert.doesNotMatch(storage.cookie, /access_token|refresh_token/);
    assert.equal(storage.entries, 0, 'the restored session keeps nothing in web storage');

    await page.click('#logout-all');
    await page.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    await page.locator('#notice').filter({ hasText: /\(2 sessions ended\)/ }).waitFor();
    assert.equal((await pageFetch(page, '/profile')).status, 401);
    // A reload now finds no session: signed out, no error.
    await page.reload();
    await page.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    // The other browser's session is gone too: its next call fails and it signs out.
    await otherPage.click('#sessions-reload');
    await otherPage.locator('#status').filter({ hasText: 'Signed out' }).waitFor();
    await other.close();
  });

  step('no script error and no CSP violation on the way', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(cspViolations, []);
  });
});

/** Polls `check` until it returns a truthy value (at most 10 s), and returns that value. */
async function until(check) {
  for (let i = 0; i < 100; i += 1) {
    const value = check();
    if (value) return value;
    await sleep(100);
  }
  throw new Error('timed out waiting');
}
