// Tessera's hosted pages: sign-in, sign-up, forgot/reset password, verify email, settings.
//
// One script for every page; <body data-page> says which part runs. The page's words come
// from the server (rendered in the page's language); the few this script writes itself are
// data-* attributes of #strings, and the API's messages come in the same language because
// every request sends the page's language as Accept-Language.
//
// Authentication is the demo's (assets/demo/app.js): the two HttpOnly cookies, which this
// script never sees, plus the CSRF token as X-CSRF-Token on state-changing requests. The
// token is kept in this module's memory only (never in web storage or a cookie); a page
// opened afresh asks GET /refresh/csrf for it. A protected request answered 401 triggers one
// shared POST /refresh and one retry; when that fails the browser goes to the sign-in page.
//
// Nothing here builds markup from strings: text goes in with textContent, so a server value
// can never become HTML.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const LANG = document.documentElement.lang || 'en';

/** The CSRF token of the current session, or null when signed out. */
let csrfToken = null;
/** The refresh in flight, shared by every request that needs it. */
let refreshing = null;
/** Counts finished refreshes, so a request can tell whether one happened since it started. */
let refreshGeneration = 0;

const $ = (selector, root = document) => root.querySelector(selector);

/** A word the server rendered for this script (data-* of #strings). */
function word(key) {
  const strings = document.getElementById('strings');
  return (strings && strings.dataset[key]) || key;
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** One HTTP request, no refresh logic. Never throws: a network failure is status 0. */
async function send(method, path, body) {
  const headers = { Accept: 'application/json', 'Accept-Language': LANG };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrfToken && UNSAFE.has(method)) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    return { status: 0, data: { error: 'network', message: word('networkError') } };
  }
  return { status: response.status, data: await readBody(response) };
}

async function doRefresh() {
  const { status, data } = await send('POST', '/refresh');
  csrfToken = status === 200 && data && typeof data.csrf_token === 'string' ? data.csrf_token : null;
  return csrfToken !== null;
}

/** Refreshes once for everyone waiting; resolves to whether the session is still alive. */
function refreshOnce() {
  if (!refreshing) {
    refreshing = doRefresh().finally(() => {
      refreshGeneration += 1;
      refreshing = null;
    });
  }
  return refreshing;
}

/** The sign-in page, coming back here afterwards. */
function goToSignin() {
  window.location.assign(document.body.dataset.signin || '/signin');
}

/** A protected request: on a 401 it refreshes (once, shared) and retries once. */
async function api(method, path, body) {
  const generation = refreshGeneration;
  let result = await send(method, path, body);
  if (result.status !== 401) return result;
  const alive = refreshGeneration !== generation ? csrfToken !== null : await refreshOnce();
  if (!alive) {
    goToSignin();
    return result;
  }
  result = await send(method, path, body);
  if (result.status === 401) goToSignin();
  return result;
}

// --- Notices and field errors --------------------------------------------------------------

function setNotice(element, kind, message, extra = []) {
  element.replaceChildren();
  element.dataset.kind = kind;
  element.append(document.createTextNode(message));
  if (extra.length > 0) {
    const list = document.createElement('ul');
    for (const line of extra) {
      const item = document.createElement('li');
      item.textContent = line;
      list.append(item);
    }
    element.append(list);
  }
}

function resetNotice(element) {
  element.replaceChildren();
  delete element.dataset.kind;
}

function clearForm(form) {
  const notice = $('.notice', form);
  if (notice) {
    notice.replaceChildren();
    delete notice.dataset.kind;
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  for (const slot of form.querySelectorAll('.field-error')) slot.textContent = '';
}

/** Marks one field invalid with its message (read out with the field, aria-describedby). */
function fieldError(form, name, message) {
  const input = form.elements.namedItem(name);
  if (!input || !input.id) return false;
  input.setAttribute('aria-invalid', 'true');
  const slot = document.getElementById(`${input.id}-error`);
  if (slot) slot.textContent = message;
  return true;
}

/** Shows an API error in a form: its message, and each field problem beside its field. */
function showError(form, result) {
  const data = result.data || {};
  const problems = data.details && Array.isArray(data.details.errors) ? data.details.errors : [];
  const unplaced = [];
  for (const problem of problems) {
    if (!fieldError(form, problem.field, problem.message)) unplaced.push(problem.message);
  }
  setNotice($('.notice', form), 'error', data.message || `HTTP ${result.status}`, unplaced);
  const invalid = $('[aria-invalid="true"]', form);
  if (invalid) invalid.focus();
}

function showOk(form, message) {
  setNotice($('.notice', form), 'ok', message);
}

/** A finished one-shot form (sign-up, forgot, reset, verify): only its notice stays. */
function finish(form, kind, message) {
  for (const child of form.children) {
    if (!child.classList.contains('notice')) child.hidden = true;
  }
  setNotice($('.notice', form), kind, message);
}

function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** Runs a form's submit handler with its button disabled, and never twice at once. */
function onSubmit(form, handler) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('button[type=submit]', form);
    if (button.disabled) return;
    button.disabled = true;
    clearForm(form);
    try {
      await handler(form);
    } finally {
      button.disabled = false;
    }
  });
}

// Passkeys (docs/MFA.md, "Passkeys"). The server sends the WebAuthn options in their JSON form
// and takes the browser's answer as PublicKeyCredential.toJSON(): no base64 handling here.

function passkeysSupported() {
  return typeof window.PublicKeyCredential === 'function'
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';
}

/** Runs navigator.credentials.create/get on the server's options; the answer's JSON, or null
 * when the person cancelled or the browser refused. */
async function runPasskey(kind, options) {
  try {
    const credential = kind === 'create'
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    return credential ? credential.toJSON() : null;
  } catch (error) {
    // NotAllowedError: cancelled or timed out; InvalidStateError: this authenticator has one.
    console.warn(`passkey ${kind}: ${error.name}: ${error.message}`);
    return null;
  }
}

// --- Signed-out pages ------------------------------------------------------------------------

/** Where a finished sign-in goes: the return target the server checked (same origin, or
 * GATEWAY_DOMAINS), else the settings. */
function signedIn() {
  window.location.assign(document.body.dataset.returnTo || '/account/settings');
}

/** `{n}` of a rendered word replaced by a number. */
function withNumber(key, n) {
  return word(key).replace('{n}', String(n));
}

function initSignin() {
  const signinForm = $('#signin-form');
  const mfaForm = $('#mfa-form');
  const codeInput = $('#mfa-code');
  const recoveryInput = $('#recovery-code');
  const switchButton = $('#mfa-switch');
  // The second step's challenge (POST /login's mfa_token): in this closure only, for 5 minutes.
  let mfaToken = null;
  // The login's passkey ceremony ({ceremony_id, public_key}) when the account has passkeys.
  let mfaPasskey = null;
  let method = 'totp';
  let methods = [];

  /** Shows one of the two second-factor fields; the other is disabled (not validated, not sent). */
  function useMethod(next) {
    method = next;
    const totp = next === 'totp';
    codeInput.disabled = !totp;
    recoveryInput.disabled = totp;
    codeInput.closest('.field').hidden = !totp;
    recoveryInput.closest('.field').hidden = totp;
    switchButton.textContent = word(totp ? 'useRecoveryCode' : 'useAuthenticator');
    switchButton.hidden = !methods.includes(totp ? 'recovery_code' : 'totp');
    clearForm(mfaForm);
    (totp ? codeInput : recoveryInput).focus();
  }

  /** Back to the password step, with a message when the challenge is no longer usable. */
  function restart(message) {
    mfaToken = null;
    mfaPasskey = null;
    mfaForm.reset();
    clearForm(mfaForm);
    mfaForm.hidden = true;
    signinForm.hidden = false;
    clearForm(signinForm);
    if (message) setNotice($('.notice', signinForm), 'error', message);
    const password = $('#password');
    password.value = '';
    password.focus();
  }

  onSubmit(signinForm, async (form) => {
    const { login, password } = values(form);
    const credentials = login.includes('@') ? { email: login, password } : { username: login, password };
    const result = await send('POST', '/login', credentials);
    if (result.status !== 200) return showError(form, result);
    const data = result.data || {};
    if (data.mfa_required !== true) return signedIn();
    if (typeof data.mfa_token !== 'string' || data.mfa_token === '') return showError(form, result);
    // The password was right and the account has a second factor: step two.
    mfaToken = data.mfa_token;
    methods = Array.isArray(data.methods) ? data.methods : ['totp'];
    mfaPasskey = methods.includes('passkey') && data.passkey ? data.passkey : null;
    form.hidden = true;
    mfaForm.reset();
    mfaForm.hidden = false;
    const codes = methods.includes('totp');
    // Without an authenticator app, the passkey is the only way: no code fields.
    $('button[type=submit]', mfaForm).hidden = !codes;
    $('#mfa-passkey').hidden = !mfaPasskey;
    if (!codes) {
      codeInput.disabled = true;
      recoveryInput.disabled = true;
      codeInput.closest('.field').hidden = true;
      recoveryInput.closest('.field').hidden = true;
      switchButton.hidden = true;
      return $('#mfa-passkey').focus();
    }
    useMethod('totp');
  });

  switchButton.addEventListener('click', () => useMethod(method === 'totp' ? 'recovery_code' : 'totp'));
  $('#mfa-restart').addEventListener('click', () => restart(null));

  // Password-less: any passkey this browser has for the site.
  const passkeySignin = $('#passkey-signin');
  const passkeyNotice = $('#passkey-signin-notice');
  passkeySignin.addEventListener('click', async () => {
    if (passkeySignin.disabled) return;
    resetNotice(passkeyNotice);
    if (!passkeysSupported()) return setNotice(passkeyNotice, 'error', word('passkeysUnsupported'));
    passkeySignin.disabled = true;
    try {
      const start = await send('POST', '/login/passkey/start', {});
      if (start.status !== 200) return setNotice(passkeyNotice, 'error', (start.data || {}).message || '');
      const credential = await runPasskey('get', start.data.public_key);
      if (!credential) return setNotice(passkeyNotice, 'error', word('passkeyFailed'));
      const result = await send('POST', '/login/passkey/finish', { ceremony_id: start.data.ceremony_id, credential });
      if (result.status === 200) return signedIn();
      setNotice(passkeyNotice, 'error', (result.data || {}).message || word('passkeyFailed'));
    } finally {
      passkeySignin.disabled = false;
    }
  });

  // The second step with a passkey (the login's own ceremony; single use).
  $('#mfa-passkey').addEventListener('click', async () => {
    const notice = $('.notice', mfaForm);
    clearForm(mfaForm);
    if (!passkeysSupported()) return setNotice(notice, 'error', word('passkeysUnsupported'));
    if (!mfaPasskey) return restart(word('mfaExpired'));
    const ceremony = mfaPasskey;
    mfaPasskey = null;
    const credential = await runPasskey('get', ceremony.public_key);
    if (!credential) return restart(word('passkeyFailed'));
    const result = await send('POST', '/login/mfa', {
      mfa_token: mfaToken,
      passkey: { ceremony_id: ceremony.ceremony_id, credential },
    });
    if (result.status === 200) return signedIn();
    // The ceremony is spent either way: the next try starts from the password.
    restart(word('passkeyFailed'));
  });

  onSubmit(mfaForm, async (form) => {
    const input = method === 'totp' ? codeInput : recoveryInput;
    const body = { mfa_token: mfaToken };
    body[input.name] = input.value;
    const result = await send('POST', '/login/mfa', body);
    if (result.status === 200) return signedIn();
    const data = result.data || {};
    if (data.error === 'invalid_mfa_token') return restart(word('mfaExpired'));
    if (data.error === 'invalid_mfa_code') {
      const left = data.details && Number.isInteger(data.details.attempts_left) ? data.details.attempts_left : null;
      // No attempt left: the challenge is spent, the next code would be refused anyway.
      if (left === 0) return restart(word('mfaExpired'));
      const message = left === null ? word('mfaWrongCode') : `${word('mfaWrongCode')} ${withNumber('mfaAttemptsLeft', left)}`;
      setNotice($('.notice', form), 'error', message);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return input.select();
    }
    showError(form, result);
  });
}

function initSignup() {
  onSubmit($('#signup-form'), async (form) => {
    const { email, username, password } = values(form);
    const result = await send('POST', '/register', { email, username, password });
    if (result.status !== 201) return showError(form, result);
    const done = (document.body.dataset.done || '').replace('{email}', result.data.email);
    finish(form, 'ok', done);
    $('#signin-link').focus();
  });
}

function initForgot() {
  onSubmit($('#forgot-form'), async (form) => {
    const result = await send('POST', '/password/forgot', { email: values(form).email });
    if (result.status !== 202) return showError(form, result);
    finish(form, 'ok', result.data.message);
  });
}

function initReset() {
  onSubmit($('#reset-form'), async (form) => {
    const { token, new_password: password, confirm_password: confirm } = values(form);
    if (password !== confirm) {
      fieldError(form, 'confirm_password', word('passwordsDiffer'));
      setNotice($('.notice', form), 'error', word('passwordsDiffer'));
      return $('#confirm-password').focus();
    }
    const result = await send('POST', '/password/reset', { token, new_password: password });
    if (result.status === 200) {
      finish(form, 'ok', result.data.message);
      return $('#signin-link').focus();
    }
    if (result.data && result.data.error === 'invalid_link') return finish(form, 'error', result.data.message);
    showError(form, result);
  });
}

function initVerify() {
  onSubmit($('#verify-form'), async (form) => {
    const result = await send('POST', '/email/verify', { token: values(form).token });
    if (result.status === 200) return finish(form, 'ok', result.data.message);
    if (result.data && result.data.error === 'invalid_link') return finish(form, 'error', result.data.message);
    showError(form, result);
  });
}

// --- Account settings ------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

function formatTime(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString(LANG);
}

function button(text, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

async function loadSessions() {
  const notice = $('#sessions-notice');
  const result = await api('GET', '/sessions');
  if (result.status !== 200) return setNotice(notice, 'error', (result.data || {}).message || '');
  const rows = result.data.sessions.map((session) => {
    const row = document.createElement('tr');
    row.dataset.sessionId = session.id;
    const started = cell(formatTime(session.created_at));
    if (session.current) {
      row.className = 'current';
      started.append(document.createTextNode(` (${word('thisSession')})`));
    }
    const end = button(word('endSession'), 'secondary end-session', () => endSession(session.id, session.current));
    end.setAttribute('aria-label', `${word('endSession')}: ${session.user_agent || session.id.slice(0, 8)}`);
    const action = document.createElement('td');
    action.append(end);
    row.append(
      started,
      cell(formatTime(session.last_used_at)),
      cell(session.ip_address),
      cell(session.user_agent, 'agent'),
      action,
    );
    return row;
  });
  $('#sessions tbody').replaceChildren(...rows);
}

async function endSession(id, current) {
  const notice = $('#sessions-notice');
  const result = await api('DELETE', `/sessions/${encodeURIComponent(id)}`);
  if (result.status !== 204) return setNotice(notice, 'error', (result.data || {}).message || '');
  if (current) return goToSignin();
  setNotice(notice, 'ok', word('sessionEnded'));
  await loadSessions();
}

async function loadKeys() {
  const form = $('#key-form');
  const result = await api('GET', '/api-keys');
  if (result.status !== 200) return showError(form, result);
  const live = result.data.api_keys.filter((key) => !key.revoked_at);
  const rows = live.map((key) => {
    const row = document.createElement('tr');
    row.dataset.keyId = key.id;
    const remove = button(word('deleteKey'), 'secondary delete-key', () => deleteKey(key.id));
    remove.setAttribute('aria-label', `${word('deleteKey')}: ${key.name}`);
    const action = document.createElement('td');
    action.append(remove);
    row.append(
      cell(key.name),
      cell(`${key.prefix}…`),
      cell(key.scopes.join(' ')),
      cell(formatTime(key.created_at)),
      cell(key.last_used_at ? formatTime(key.last_used_at) : word('never')),
      action,
    );
    return row;
  });
  if (rows.length === 0) {
    const row = document.createElement('tr');
    const empty = cell(word('noKeys'));
    empty.colSpan = 6;
    row.append(empty);
    rows.push(row);
  }
  $('#api-keys tbody').replaceChildren(...rows);
}

async function deleteKey(id) {
  const form = $('#key-form');
  clearForm(form);
  const result = await api('DELETE', `/api-keys/${encodeURIComponent(id)}`);
  if (result.status !== 204) return showError(form, result);
  $('#new-key').hidden = true;
  $('#new-key-value').textContent = '';
  showOk(form, word('keyDeleted'));
  await loadKeys();
}

// Two-factor authentication (docs/MFA.md).

/** The server's QR code (an SVG document) as a data: URL for an <img>: an image never runs
 * script, and the SVG never becomes part of this page's DOM. */
function svgImage(svg) {
  let binary = '';
  for (const byte of new TextEncoder().encode(svg)) binary += String.fromCharCode(byte);
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}

/** A base32 secret in groups of four, easier to type (authenticator apps ignore the spaces). */
function grouped(secret) {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

/** Shows which parts of the section apply: `off`, `enrol`, `codes` or `on`. */
function mfaView(view) {
  $('#mfa-off').hidden = view !== 'off';
  $('#mfa-enrol').hidden = view !== 'enrol';
  $('#recovery-codes').hidden = view !== 'codes';
  $('#mfa-on').hidden = view !== 'on';
  if (view !== 'enrol') {
    $('#mfa-qr').removeAttribute('src');
    $('#mfa-secret').textContent = '';
  }
  if (view !== 'codes') $('#recovery-code-list').replaceChildren();
  document.body.dataset.mfa = view;
}

async function loadMfa() {
  const status = $('#mfa-status');
  const result = await api('GET', '/account/mfa');
  if (result.status !== 200) {
    status.textContent = (result.data || {}).message || `HTTP ${result.status}`;
    return;
  }
  const on = result.data.totp_enrolled === true;
  status.textContent = on
    ? `${word('mfaOn')} ${withNumber('recoveryCodesLeft', Number(result.data.recovery_codes_left) || 0)}`
    : word('mfaOff');
  mfaView(on ? 'on' : 'off');
}

/** Recovery codes, shown this once, until "I have saved them". */
function showRecoveryCodes(codes) {
  const items = (Array.isArray(codes) ? codes : []).map((code) => {
    const item = document.createElement('li');
    item.textContent = String(code);
    return item;
  });
  mfaView('codes');
  $('#recovery-code-list').replaceChildren(...items);
  $('#recovery-codes').focus();
}

function initMfa() {
  const notice = $('#mfa-notice');
  // Set when the codes on show come with a new enrolment: "I have saved them" then says it is on.
  let justEnrolled = false;
  const clearNotice = () => {
    notice.replaceChildren();
    delete notice.dataset.kind;
  };

  onSubmit($('#mfa-setup-form'), async (form) => {
    clearNotice();
    const result = await api('POST', '/account/mfa/totp', { password: values(form).password });
    if (result.status !== 200) return showError(form, result);
    const { secret, qr_svg: svg } = result.data;
    if (typeof secret !== 'string' || typeof svg !== 'string') return showError(form, result);
    form.reset();
    mfaView('enrol');
    $('#mfa-qr').src = svgImage(svg);
    $('#mfa-secret').textContent = grouped(secret);
    $('#mfa-confirm-code').focus();
  });

  onSubmit($('#mfa-confirm-form'), async (form) => {
    const result = await api('POST', '/account/mfa/totp/confirm', { code: values(form).code });
    if (result.status !== 200) return showError(form, result);
    form.reset();
    justEnrolled = true;
    await loadMfa(); // the status says "On" above the codes
    showRecoveryCodes(result.data.recovery_codes);
  });

  $('#mfa-enrol-cancel').addEventListener('click', async () => {
    clearForm($('#mfa-confirm-form'));
    $('#mfa-confirm-form').reset();
    await loadMfa();
    $('#mfa-setup-password').focus();
  });

  $('#recovery-codes-saved').addEventListener('click', async () => {
    await loadMfa();
    if (justEnrolled) setNotice(notice, 'ok', word('mfaEnabled'));
    justEnrolled = false;
    $('#mfa-status').focus();
  });

  onSubmit($('#recovery-form'), async (form) => {
    clearNotice();
    const result = await api('POST', '/account/mfa/recovery-codes', { password: values(form).password });
    if (result.status !== 200) return showError(form, result);
    form.reset();
    justEnrolled = false;
    await loadMfa();
    showRecoveryCodes(result.data.recovery_codes);
  });

  const removeForm = $('#mfa-remove-form');
  const confirmBox = $('#mfa-remove-confirm');
  onSubmit(removeForm, async () => {
    clearNotice();
    confirmBox.hidden = false;
    $('#mfa-remove-confirm-button').focus();
  });
  $('#mfa-remove-cancel').addEventListener('click', () => {
    confirmBox.hidden = true;
    $('#mfa-remove-password').focus();
  });
  $('#mfa-remove-confirm-button').addEventListener('click', async () => {
    const result = await api('DELETE', '/account/mfa/totp', { password: values(removeForm).password });
    confirmBox.hidden = true;
    if (result.status !== 200) return showError(removeForm, result);
    removeForm.reset();
    await loadMfa();
    setNotice(notice, 'ok', (result.data || {}).message || '');
    $('#mfa-status').focus();
  });
}

// Passkeys in the settings.

/** The passkey whose Remove was pressed: {id, name}. */
let removingPasskey = null;

async function loadPasskeys() {
  const notice = $('#passkeys-notice');
  const result = await api('GET', '/account/passkeys');
  if (result.status !== 200) return setNotice(notice, 'error', (result.data || {}).message || '');
  const rows = result.data.passkeys.map((passkey) => {
    const row = document.createElement('tr');
    row.dataset.passkeyId = passkey.id;
    const remove = button(word('passkeyRemove'), 'secondary remove-passkey', () => askRemovePasskey(passkey));
    remove.setAttribute('aria-label', `${word('passkeyRemove')}: ${passkey.name}`);
    const action = document.createElement('td');
    action.append(remove);
    row.append(
      cell(passkey.name),
      cell(formatTime(passkey.created_at)),
      cell(passkey.last_used_at ? formatTime(passkey.last_used_at) : word('never')),
      action,
    );
    return row;
  });
  if (rows.length === 0) {
    const row = document.createElement('tr');
    const empty = cell(word('noPasskeys'));
    empty.colSpan = 4;
    row.append(empty);
    rows.push(row);
  }
  $('#passkeys tbody').replaceChildren(...rows);
}

function askRemovePasskey(passkey) {
  removingPasskey = passkey;
  $('#passkey-remove-name').textContent = passkey.name;
  $('#passkey-remove').hidden = false;
  $('#passkey-remove-password').focus();
}

function initPasskeys() {
  const notice = $('#passkeys-notice');
  const removeBox = $('#passkey-remove');
  onSubmit($('#passkey-form'), async (form) => {
    resetNotice(notice);
    if (!passkeysSupported()) return setNotice($('.notice', form), 'error', word('passkeysUnsupported'));
    const { name, password } = values(form);
    const start = await api('POST', '/account/passkeys/register/start', { password });
    if (start.status !== 200) return showError(form, start);
    const credential = await runPasskey('create', start.data.public_key);
    if (!credential) return setNotice($('.notice', form), 'error', word('passkeyFailed'));
    const result = await api('POST', '/account/passkeys/register/finish', {
      ceremony_id: start.data.ceremony_id,
      name,
      credential,
    });
    if (result.status !== 201) return showError(form, result);
    form.reset();
    await loadPasskeys();
    setNotice(notice, 'ok', word('passkeyAdded'));
  });
  onSubmit($('#passkey-remove-form'), async (form) => {
    if (!removingPasskey) return;
    const { password } = values(form);
    const result = await api('DELETE', `/account/passkeys/${encodeURIComponent(removingPasskey.id)}`, { password });
    if (result.status !== 204) return showError(form, result);
    form.reset();
    removingPasskey = null;
    removeBox.hidden = true;
    await loadPasskeys();
    setNotice(notice, 'ok', word('passkeyRemoved'));
  });
  $('#passkey-remove-cancel').addEventListener('click', () => {
    removingPasskey = null;
    $('#passkey-remove-form').reset();
    clearForm($('#passkey-remove-form'));
    removeBox.hidden = true;
  });
}

async function initSettings() {
  const restored = await send('GET', '/refresh/csrf');
  if (restored.status !== 200 || !restored.data || typeof restored.data.csrf_token !== 'string') {
    return goToSignin();
  }
  csrfToken = restored.data.csrf_token;
  const profile = await api('GET', '/profile/full');
  if (profile.status !== 200) return;
  $('#account-email').textContent = profile.data.email;
  $('#account-username').textContent = profile.data.username;
  $('#status').textContent = `${word('signedInAs')} ${profile.data.username}`;
  document.body.dataset.state = 'signed-in';

  $('#resend-verification').addEventListener('click', async () => {
    const result = await api('POST', '/email/verify/resend');
    const data = result.data || {};
    setNotice($('#resend-notice'), result.status < 300 ? 'ok' : 'error', data.message || '');
  });

  onSubmit($('#password-form'), async (form) => {
    const { current_password: current, new_password: password } = values(form);
    const result = await api('POST', '/account/password', { current_password: current, new_password: password });
    if (result.status !== 200) return showError(form, result);
    form.reset();
    showOk(form, result.data.message);
    await loadSessions();
  });

  onSubmit($('#email-form'), async (form) => {
    const { new_email: email, current_password: current } = values(form);
    const result = await api('POST', '/account/email', { new_email: email, current_password: current });
    if (result.status !== 202) return showError(form, result);
    form.reset();
    showOk(form, result.data.message);
  });

  onSubmit($('#key-form'), async (form) => {
    const name = values(form).name;
    const scopes = new FormData(form).getAll('scopes');
    const result = await api('POST', '/api-keys', { name, scopes });
    if (result.status !== 201) return showError(form, result);
    form.reset();
    $('#new-key-value').textContent = result.data.key;
    $('#new-key').hidden = false;
    await loadKeys();
  });

  $('#signout').addEventListener('click', async () => {
    await api('POST', '/logout');
    csrfToken = null;
    window.location.assign(document.body.dataset.signin || '/signin');
  });

  const deleteForm = $('#delete-form');
  const confirmBox = $('#delete-confirm');
  onSubmit(deleteForm, async () => {
    confirmBox.hidden = false;
    $('#delete-confirm-button').focus();
  });
  $('#delete-cancel').addEventListener('click', () => {
    confirmBox.hidden = true;
    $('#delete-password').focus();
  });
  $('#delete-confirm-button').addEventListener('click', async () => {
    const result = await api('DELETE', '/account', { password: values(deleteForm).password });
    confirmBox.hidden = true;
    if (result.status !== 204) return showError(deleteForm, result);
    csrfToken = null;
    window.location.assign(document.body.dataset.signin || '/signin');
  });

  initMfa();
  initPasskeys();
  await loadMfa();
  await loadPasskeys();
  await loadSessions();
  await loadKeys();
}

const PAGES = {
  signin: initSignin,
  signup: initSignup,
  forgot: initForgot,
  reset: initReset,
  verify: initVerify,
  settings: initSettings,
};

const init = PAGES[document.body.dataset.page];
if (init) init();
