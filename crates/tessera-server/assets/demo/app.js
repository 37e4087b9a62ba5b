// Tessera's browser demo: register, log in, chat, sessions, API keys, log out.
//
// Authentication rides on the two HttpOnly cookies the server sets (access_token on Path=/,
// refresh_token on Path=/refresh); this script never sees them and never stores a token.
// State-changing requests carry the CSRF token as X-CSRF-Token. That token comes from the
// JSON body of /login and /refresh and is kept in this module's memory only (not in
// localStorage, sessionStorage or a cookie). After a reload, GET /refresh/csrf (which the
// HttpOnly refresh cookie reaches) gives the session's CSRF token back, so the session goes on.
//
// Transparent refresh: a protected request answered 401 triggers one POST /refresh (the
// browser adds the refresh cookie) and one retry. Requests that fail at the same time share a
// single refresh, and a request that started before a refresh finished just retries.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The CSRF token of the current session, or null when signed out. */
let csrfToken = null;
/** The refresh in flight, shared by every request that needs it. */
let refreshing = null;
/** Counts finished refreshes, so a request can tell whether one happened since it started. */
let refreshGeneration = 0;

const $ = (selector) => document.querySelector(selector);

function logActivity(method, path, status, note) {
  const item = document.createElement('li');
  item.textContent = `${method} ${path} → ${status}${note ? ` (${note})` : ''}`;
  if (status === 0 || status >= 400) item.className = 'fail';
  const list = $('#activity');
  list.append(item);
  while (list.children.length > 50) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
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
  const headers = { Accept: 'application/json' };
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
  } catch (error) {
    logActivity(method, path, 0, 'network error');
    return { status: 0, data: { error: 'network', message: `Network error: ${error.message}` } };
  }
  const data = await readBody(response);
  logActivity(method, path, response.status, data && data.error);
  return { status: response.status, data };
}

/** Keeps the CSRF token of a /login or /refresh answer and drops everything else in it. */
function adoptTokenResponse(data) {
  // With TOKEN_DELIVERY=both the body also holds the tokens; they are deliberately ignored.
  csrfToken = data && typeof data.csrf_token === 'string' ? data.csrf_token : null;
}

async function doRefresh() {
  const { status, data } = await send('POST', '/refresh');
  if (status === 200) {
    adoptTokenResponse(data);
    return csrfToken !== null;
  }
  return false;
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

/** A protected request: on a 401 it refreshes (once, shared) and retries once. */
async function api(method, path, body) {
  const generation = refreshGeneration;
  let result = await send(method, path, body);
  if (result.status !== 401 || csrfToken === null) return result;
  // A refresh finished after this request left: the cookies are new already, just retry.
  const alive = refreshGeneration !== generation ? csrfToken !== null : await refreshOnce();
  if (!alive) {
    signedOut('Your session has ended. Please log in again.');
    return result;
  }
  result = await send(method, path, body);
  return result;
}

function showNotice(kind, message, details) {
  const notice = $('#notice');
  notice.replaceChildren();
  notice.dataset.kind = kind;
  notice.append(document.createTextNode(message));
  const errors = details && Array.isArray(details.errors) ? details.errors : [];
  if (errors.length > 0) {
    const list = document.createElement('ul');
    for (const problem of errors) {
      const item = document.createElement('li');
      item.textContent = `${problem.field}: ${problem.message}`;
      list.append(item);
    }
    notice.append(list);
  }
  notice.hidden = false;
}

function clearNotice() {
  const notice = $('#notice');
  notice.hidden = true;
  notice.replaceChildren();
  delete notice.dataset.kind;
}

function showError(result, fallback) {
  const data = result.data || {};
  showNotice('error', data.message || fallback || `Request failed (${result.status})`, data.details);
}

function signedIn(username) {
  $('#status').textContent = `Signed in as ${username}`;
  $('#status').dataset.state = 'in';
  $('#signed-out').hidden = true;
  $('#signed-in').hidden = false;
}

function signedOut(message) {
  csrfToken = null;
  $('#status').textContent = 'Signed out';
  $('#status').dataset.state = 'out';
  $('#signed-in').hidden = true;
  $('#signed-out').hidden = false;
  $('#chat-log').replaceChildren();
  $('#sessions tbody').replaceChildren();
  $('#api-keys tbody').replaceChildren();
  $('#new-key-value').textContent = '';
  $('#new-key').hidden = true;
  if (message) showNotice('info', message);
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function onRegister(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const { email, username, password } = formValues(form);
  const result = await send('POST', '/register', { email, username, password });
  if (result.status !== 201) return showError(result, 'Registration failed');
  form.reset();
  $('#login-form').elements.login.value = result.data.email;
  showNotice('info', `Registered ${result.data.username}. You can log in now.`);
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const { login, password } = formValues(form);
  const credentials = login.includes('@') ? { email: login, password } : { username: login, password };
  const result = await send('POST', '/login', credentials);
  if (result.status !== 200) return showError(result, 'Login failed');
  adoptTokenResponse(result.data);
  form.reset();
  if (csrfToken === null) {
    return showNotice('error', 'The server sent no CSRF token; cookie sign-in cannot work.');
  }
  const profile = await send('GET', '/profile');
  if (profile.status === 401) {
    csrfToken = null;
    return showNotice(
      'error',
      'Logged in, but the browser did not keep the session cookies. Over plain http on a host other ' +
        'than localhost/127.0.0.1 the server needs COOKIE_SECURE=false, and TOKEN_DELIVERY must be ' +
        'cookie or both.',
    );
  }
  if (profile.status !== 200) return showError(profile, 'Could not read the profile');
  clearNotice();
  signedIn(profile.data.username);
  await loadSessions();
  await loadKeys();
}

async function onChat(event) {
  event.preventDefault();
  const input = $('#chat-message');
  const message = input.value;
  const result = await api('POST', '/agent/chat', { message });
  if (result.status !== 200) {
    if (csrfToken !== null) showError(result, 'The chat request failed');
    return;
  }
  clearNotice();
  input.value = '';
  const you = document.createElement('li');
  you.className = 'you';
  you.textContent = `You: ${message}`;
  const reply = document.createElement('li');
  reply.className = 'reply';
  reply.textContent = result.data.response;
  $('#chat-log').append(you, reply);
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

function formatTime(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString();
}

async function loadSessions() {
  const result = await api('GET', '/sessions');
  if (result.status !== 200) {
    if (csrfToken !== null) showError(result, 'Could not list the sessions');
    return;
  }
  const rows = result.data.sessions.map((session) => {
    const row = document.createElement('tr');
    row.dataset.sessionId = session.id;
    if (session.current) row.className = 'current';
    const end = document.createElement('button');
    end.type = 'button';
    end.className = 'end-session';
    end.textContent = 'End';
    end.addEventListener('click', () => endSession(session.id, session.current));
    const action = document.createElement('td');
    action.append(end);
    row.append(
      cell(`${session.id.slice(0, 8)}…`),
      cell(formatTime(session.created_at)),
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
  const result = await api('DELETE', `/sessions/${encodeURIComponent(id)}`);
  if (result.status !== 204) {
    if (csrfToken !== null) showError(result, 'Could not end the session');
    return;
  }
  if (current) {
    signedOut('This session was ended.');
    return;
  }
  showNotice('info', 'Session ended.');
  await loadSessions();
}

async function loadKeys() {
  const result = await api('GET', '/api-keys');
  if (result.status !== 200) {
    if (csrfToken !== null) showError(result, 'Could not list the API keys');
    return;
  }
  const live = result.data.api_keys.filter((key) => !key.revoked_at);
  const rows = live.map((key) => {
    const row = document.createElement('tr');
    row.dataset.keyId = key.id;
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'revoke-key';
    revoke.textContent = 'Revoke';
    revoke.addEventListener('click', () => revokeKey(key.id));
    const action = document.createElement('td');
    action.append(revoke);
    row.append(
      cell(key.name),
      cell(`${key.prefix}…`),
      cell(key.scopes.join(' ')),
      cell(formatTime(key.created_at)),
      cell(key.last_used_at ? formatTime(key.last_used_at) : 'never'),
      action,
    );
    return row;
  });
  $('#api-keys tbody').replaceChildren(...rows);
}

async function onCreateKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const name = $('#key-name').value;
  const scopes = new FormData(form).getAll('scopes');
  const result = await api('POST', '/api-keys', { name, scopes });
  if (result.status !== 201) {
    if (csrfToken !== null) showError(result, 'Could not create the key');
    return;
  }
  clearNotice();
  form.reset();
  // The secret is shown once, as text (never as HTML), and forgotten on sign-out.
  $('#new-key-value').textContent = result.data.key;
  $('#new-key').hidden = false;
  await loadKeys();
}

async function revokeKey(id) {
  const result = await api('DELETE', `/api-keys/${encodeURIComponent(id)}`);
  if (result.status !== 204) {
    if (csrfToken !== null) showError(result, 'Could not revoke the key');
    return;
  }
  showNotice('info', 'API key revoked.');
  await loadKeys();
}

async function onLogout(path) {
  const result = await api('POST', path);
  if (result.status !== 200) {
    if (csrfToken !== null) showError(result, 'Logout failed');
    return;
  }
  const ended = typeof result.data.sessions_revoked === 'number' ? ` (${result.data.sessions_revoked} sessions ended)` : '';
  signedOut(`${result.data.message}${ended}`);
}

async function start() {
  $('#register-form').addEventListener('submit', onRegister);
  $('#login-form').addEventListener('submit', onLogin);
  $('#chat-form').addEventListener('submit', onChat);
  $('#sessions-reload').addEventListener('click', loadSessions);
  $('#key-form').addEventListener('submit', onCreateKey);
  $('#logout').addEventListener('click', () => onLogout('/logout'));
  $('#logout-all').addEventListener('click', () => onLogout('/logout/all'));
  // A fresh page (a reload, a new tab) has the cookies but no CSRF token yet: the refresh
  // cookie gets it back, then /profile (refreshing first if the access cookie has expired)
  // says whose session this is. No refresh cookie, or a session ended meanwhile: signed out.
  const restored = await send('GET', '/refresh/csrf');
  if (restored.status === 200 && restored.data && typeof restored.data.csrf_token === 'string') {
    csrfToken = restored.data.csrf_token;
    const profile = await api('GET', '/profile');
    if (profile.status === 200) {
      signedIn(profile.data.username);
      await loadSessions();
      await loadKeys();
      return;
    }
  }
  // (A failed refresh has signed out already, with its notice.)
  if ($('#status').dataset.state !== 'out') signedOut();
}

start();
