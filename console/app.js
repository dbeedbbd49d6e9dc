// Placeholder console script: sign in (POST /v1/sessions), show the session
// (GET /v1/sessions/current), sign out (DELETE /v1/sessions/current with X-CSRF-Token).
'use strict';

const $ = (id) => document.getElementById(id);
let csrf = '';

function show(session) {
  csrf = session ? session.csrf_token : '';
  $('signin').hidden = !!session;
  $('session').hidden = !session;
  $('expires').textContent = session ? session.expires_at : '';
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function load() {
  const r = await api('GET', '/v1/sessions/current');
  show(r.status === 200 ? r.json : null);
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('error').textContent = '';
  const r = await api('POST', '/v1/sessions', { api_key: $('api_key').value });
  $('api_key').value = '';
  if (r.status === 201) show(r.json);
  else $('error').textContent = r.json && r.json.error ? r.json.error : 'sign-in failed';
});

$('signout').addEventListener('click', async () => {
  await api('DELETE', '/v1/sessions/current');
  show(null);
});

load().catch((e) => { $('error').textContent = String(e); });
