// The relying party's side of the IdP, played by panva's `openid-client` (OpenID
// Certified) and `jose`: discovery, the authorization code flow with PKCE S256, state
// and nonce, userinfo, refresh-token rotation and reuse detection, introspection and
// revocation, prompt=none, RP-initiated logout and a verified back-channel logout token.
// `fetch` with manual redirects and a small cookie jar plays the browser.
//
// Parameters, as `--name value` arguments or environment variables (argument wins):
//   --issuer               IDP_ISSUER               http://127.0.0.1:PORT
//   --client-id            IDP_CLIENT_ID
//   --client-secret        IDP_CLIENT_SECRET        (client_secret_post, the library's default)
//   --redirect-uri         IDP_REDIRECT_URI         registered for the client
//   --post-logout-uri      IDP_POST_LOGOUT_URI      registered post_logout_redirect_uri
//   --backchannel-port     IDP_BACKCHANNEL_PORT     the client's backchannel_logout_uri is
//                                                   http://127.0.0.1:PORT/backchannel-logout
//   --username             IDP_USERNAME
//   --password             IDP_PASSWORD
//
// Prints one line per step; exits 1 with the reason at the first failure.

import assert from 'node:assert/strict';
import http from 'node:http';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';
import * as jose from 'jose';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

// --- parameters -------------------------------------------------------------------

function parameters() {
  const names = {
    issuer: 'IDP_ISSUER',
    'client-id': 'IDP_CLIENT_ID',
    'client-secret': 'IDP_CLIENT_SECRET',
    'redirect-uri': 'IDP_REDIRECT_URI',
    'post-logout-uri': 'IDP_POST_LOGOUT_URI',
    'backchannel-port': 'IDP_BACKCHANNEL_PORT',
    username: 'IDP_USERNAME',
    password: 'IDP_PASSWORD',
  };
  const { values } = parseArgs({
    options: Object.fromEntries(Object.keys(names).map((n) => [n, { type: 'string' }])),
    strict: true,
  });
  const out = {};
  for (const [name, env] of Object.entries(names)) {
    const value = values[name] ?? process.env[env];
    if (!value) throw new Error(`missing parameter --${name} (or ${env})`);
    out[name] = value;
  }
  return out;
}

// --- the browser ------------------------------------------------------------------

/** Cookies by name, with their path; enough for one host over http. */
class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split('=');
        const v = rest.join('=');
        switch (key.toLowerCase()) {
          case 'path':
            path = v || '/';
            break;
          case 'max-age':
            if (Number(v) <= 0) expired = true;
            break;
          case 'expires':
            if (Date.parse(v) <= Date.now()) expired = true;
            break;
        }
      }
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, { value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.#cookies]
      .filter(([, c]) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  }

  has(name) {
    return this.#cookies.has(name);
  }
}

class Browser {
  constructor(origin) {
    this.origin = origin;
    this.jar = new CookieJar();
  }

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    const cookie = this.jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.jar.store(response);
    return response;
  }

  /**
   * Follows redirects from `response` while they stay on the IdP. Returns
   * `{ url, status, response }`: the first location outside the IdP (the client), or the
   * last IdP page.
   */
  async follow(url, response) {
    for (let hops = 0; hops < 10; hops++) {
      const location = response.headers.get('location');
      if (!location || response.status < 300 || response.status > 399) {
        return { url, status: response.status, response };
      }
      const next = new URL(location, url).href;
      if (new URL(next).origin !== this.origin) {
        await response.body?.cancel();
        return { url: next, status: response.status, response };
      }
      await response.body?.cancel();
      url = next;
      response = await this.request(url);
    }
    throw new Error(`too many redirects, last at ${url}`);
  }

  async get(url) {
    return this.follow(url, await this.request(url));
  }

  async post(url, fields) {
    const response = await this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
    return this.follow(url, response);
  }
}

function decodeEntities(text) {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** The value of the hidden input `name` of an HTML page. */
function hidden(html, name) {
  for (const [tag] of html.matchAll(/<input\b[^>]*>/gi)) {
    const attr = (a) => tag.match(new RegExp(`\\b${a}\\s*=\\s*"([^"]*)"`, 'i'))?.[1];
    if (attr('type')?.toLowerCase() === 'hidden' && attr('name') === name) {
      return decodeEntities(attr('value') ?? '');
    }
  }
  return undefined;
}

// --- steps ------------------------------------------------------------------------

let stepNumber = 0;
function step(message) {
  stepNumber += 1;
  console.log(`ok ${stepNumber} - ${message}`);
}

/** Asserts that `promise` rejects with an OAuth error response `code`. */
async function rejectsWith(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(
      err instanceof client.ResponseBodyError,
      `${what}: expected an OAuth error response, got ${err?.name}: ${err?.message}`,
    );
    assert.equal(err.error, code, `${what}: ${err.error}: ${err.error_description}`);
    return true;
  });
}

/** The back-channel logout endpoint of the client: keeps every logout_token. */
function startBackchannelReceiver(port) {
  const received = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://127.0.0.1');
    if (req.method !== 'POST' || pathname !== '/backchannel-logout') {
      res.writeHead(404).end();
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const contentType = req.headers['content-type'] ?? '';
      const token = new URLSearchParams(body).get('logout_token');
      if (!contentType.startsWith('application/x-www-form-urlencoded') || !token) {
        res.writeHead(400, { 'cache-control': 'no-store' }).end();
        return;
      }
      received.push(token);
      res.writeHead(200, { 'cache-control': 'no-store' }).end();
      while (waiters.length) waiters.shift()();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(port), '127.0.0.1', () => {
      resolve({
        server,
        received,
        async next(timeoutMs) {
          if (received.length) return received.shift();
          await new Promise((ok, fail) => {
            const timer = setTimeout(
              () => fail(new Error(`no logout_token reached the back-channel receiver in ${timeoutMs} ms`)),
              timeoutMs,
            );
            waiters.push(() => {
              clearTimeout(timer);
              ok();
            });
          });
          return received.shift();
        },
      });
    });
  });
}

async function main() {
  const p = parameters();
  const issuer = new URL(p.issuer);
  const browser = new Browser(issuer.origin);

  const receiver = await startBackchannelReceiver(p['backchannel-port']);
  step(`back-channel logout receiver listening on 127.0.0.1:${receiver.server.address().port}`);

  try {
    // Discovery; the secret alone means client_secret_post, the library's default.
    const config = await client.discovery(issuer, p['client-id'], p['client-secret'], undefined, {
      execute: [client.allowInsecureRequests],
    });
    const metadata = config.serverMetadata();
    assert.equal(metadata.issuer, p.issuer);
    assert.ok(metadata.code_challenge_methods_supported?.includes('S256'), 'S256 advertised');
    assert.ok(metadata.end_session_endpoint, 'end_session_endpoint advertised');
    assert.ok(metadata.introspection_endpoint, 'introspection_endpoint advertised');
    assert.ok(metadata.revocation_endpoint, 'revocation_endpoint advertised');
    assert.equal(metadata.backchannel_logout_supported, true);
    assert.equal(metadata.backchannel_logout_session_supported, true);
    step(`discovery: issuer ${metadata.issuer}`);

    /** An authorization URL with fresh PKCE S256, state and nonce. */
    async function authorization(extra = {}) {
      const codeVerifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: p['redirect-uri'],
        scope: 'openid profile email',
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...extra,
      });
      return { url, checks: { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce } };
    }

    function assertAtRedirectUri(landed, what) {
      const at = new URL(landed.url);
      assert.ok(
        `${at.origin}${at.pathname}` === p['redirect-uri'],
        `${what}: expected a redirect to ${p['redirect-uri']}, ended at ${landed.url} (HTTP ${landed.status})`,
      );
      assert.ok([302, 303].includes(landed.status), `${what}: redirect status ${landed.status}`);
      return at;
    }

    // --- the browser signs in -------------------------------------------------------
    const first = await authorization();
    const loginPage = await browser.get(first.url.href);
    // The login page is the authorization endpoint's own answer (no redirect).
    assert.equal(new URL(loginPage.url).pathname, '/authorize', `the authorize request ends at ${loginPage.url}`);
    assert.equal(loginPage.status, 200, `login page status ${loginPage.status}`);
    const loginHtml = await loginPage.response.text();
    const req = hidden(loginHtml, 'req');
    const csrf = hidden(loginHtml, 'csrf');
    assert.ok(req, 'the login form carries the parked request (req)');
    assert.ok(csrf, 'the login form carries a csrf token');
    assert.ok(browser.jar.has('idp_login'), 'the login form set the idp_login cookie');
    step('authorize: the login form, with req and csrf; idp_login cookie set');

    const signedIn = await browser.post(new URL('/login', issuer).href, {
      req,
      csrf,
      username: p.username,
      password: p.password,
    });
    if (signedIn.status === 200) {
      const page = await signedIn.response.text();
      const alert = page.match(/id="login-error">([^<]*)</)?.[1];
      throw new Error(`the sign-in was refused at ${signedIn.url}: ${alert ?? 'no error shown'}`);
    }
    assert.ok(browser.jar.has('idp_session'), 'the sign-in set the idp_session cookie');
    const callback = assertAtRedirectUri(signedIn, 'after the sign-in');
    step(`POST /login -> ${callback.origin}${callback.pathname} (HTTP ${signedIn.status})`);

    // --- code exchange: the library checks iss, state, PKCE, the ID token, nonce ----
    const tokens = await client.authorizationCodeGrant(config, callback, {
      ...first.checks,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.ok(claims, 'an ID token');
    assert.equal(claims.iss, p.issuer);
    assert.equal(claims.aud === p['client-id'] || claims.aud?.includes?.(p['client-id']), true, 'aud');
    assert.equal(claims.nonce, first.checks.expectedNonce);
    assert.ok(claims.sid, 'the ID token has a sid');
    assert.equal(typeof claims.auth_time, 'number', 'auth_time');
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.ok(tokens.access_token, 'an access token');
    assert.ok(tokens.refresh_token, 'a refresh token');
    step(`authorizationCodeGrant: ID token valid (sub ${claims.sub}, acr ${claims.acr}, sid present)`);

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(userinfo.sub, claims.sub);
    assert.equal(userinfo.preferred_username, p.username);
    assert.ok(userinfo.email, 'userinfo has the email (scope email)');
    step(`fetchUserInfo: sub matches, preferred_username ${userinfo.preferred_username}, email ${userinfo.email}`);

    // --- refresh rotation and reuse detection --------------------------------------
    const firstRefresh = tokens.refresh_token;
    const rotated = await client.refreshTokenGrant(config, firstRefresh);
    assert.ok(rotated.access_token, 'refresh gives an access token');
    assert.ok(rotated.refresh_token, 'refresh gives a new refresh token');
    assert.notEqual(rotated.refresh_token, firstRefresh, 'the refresh token rotated');
    const secondRefresh = rotated.refresh_token;
    step('refreshTokenGrant: new access token, the refresh token rotated');

    await rejectsWith(client.refreshTokenGrant(config, firstRefresh), 'invalid_grant', 'reusing the first refresh token');
    step('the first refresh token again: invalid_grant');
    await rejectsWith(
      client.refreshTokenGrant(config, secondRefresh),
      'invalid_grant',
      'the second refresh token after the reuse',
    );
    step('the second refresh token after the reuse: invalid_grant (family revoked)');
    const revokedFamily = await client.tokenIntrospection(config, rotated.access_token);
    assert.equal(revokedFamily.active, false, 'the access token of the revoked family is inactive');
    step('tokenIntrospection: the access token of the revoked family is inactive');

    // --- prompt=none with the session cookie: a new code and fresh tokens ----------
    const silent = await authorization({ prompt: 'none' });
    const silentLanded = await browser.get(silent.url.href);
    const silentCallback = assertAtRedirectUri(silentLanded, 'prompt=none with the session');
    assert.ok(silentCallback.searchParams.get('code'), `prompt=none with the session gave ${silentLanded.url}`);
    const fresh = await client.authorizationCodeGrant(config, silentCallback, {
      ...silent.checks,
      idTokenExpected: true,
    });
    assert.equal(fresh.claims().sub, claims.sub);
    assert.equal(fresh.claims().sid, claims.sid, 'the same session');
    step('prompt=none with the session cookie: a code, exchanged for fresh tokens (same sub and sid)');

    // --- introspection and revocation of a fresh access token ----------------------
    const active = await client.tokenIntrospection(config, fresh.access_token);
    assert.equal(active.active, true, 'the fresh access token is active');
    assert.equal(active.client_id, p['client-id']);
    assert.equal(active.sub, claims.sub);
    step(`tokenIntrospection: active (client_id ${active.client_id}, scope ${active.scope})`);
    await client.tokenRevocation(config, fresh.access_token);
    step('tokenRevocation of the access token');
    const inactive = await client.tokenIntrospection(config, fresh.access_token);
    assert.equal(inactive.active, false, 'the revoked access token is inactive');
    step('tokenIntrospection after revocation: inactive');
    await assert.rejects(client.fetchUserInfo(config, fresh.access_token, claims.sub), (err) => {
      const status = err.status ?? err.response?.status;
      assert.equal(status, 401, `userinfo with a revoked token: ${err.name}: ${err.message}`);
      return true;
    });
    step('fetchUserInfo with the revoked access token: 401');

    // --- prompt=none without cookies: login_required at the redirect URI -----------
    const stranger = new Browser(issuer.origin);
    const none = await authorization({ prompt: 'none' });
    const noneLanded = await stranger.get(none.url.href);
    const noneCallback = assertAtRedirectUri(noneLanded, 'prompt=none without cookies');
    await assert.rejects(client.authorizationCodeGrant(config, noneCallback, none.checks), (err) => {
      assert.ok(
        err instanceof client.AuthorizationResponseError,
        `expected an authorization error response, got ${err?.name}: ${err?.message}`,
      );
      assert.equal(err.error, 'login_required', `${err.error}: ${err.error_description}`);
      return true;
    });
    step('prompt=none without cookies: error=login_required at the redirect URI (state and iss checked)');

    // --- RP-initiated logout, then the back-channel logout token --------------------
    const logoutState = client.randomState();
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: fresh.id_token,
      post_logout_redirect_uri: p['post-logout-uri'],
      state: logoutState,
    });
    const signedOut = await browser.get(endSession.href);
    const back = new URL(signedOut.url);
    assert.equal(
      `${back.origin}${back.pathname}`,
      p['post-logout-uri'],
      `logout ends at ${signedOut.url} (HTTP ${signedOut.status})`,
    );
    assert.equal(back.searchParams.get('state'), logoutState, 'logout returns the state');
    step(`buildEndSessionUrl: logout lands on ${p['post-logout-uri']} with the state`);

    const logoutToken = await receiver.next(10_000);
    const header = jose.decodeProtectedHeader(logoutToken);
    const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
    const { payload } = await jose.jwtVerify(logoutToken, jwks, {
      issuer: p.issuer,
      audience: p['client-id'],
      typ: 'logout+jwt',
      algorithms: metadata.id_token_signing_alg_values_supported,
      requiredClaims: ['iat', 'jti', 'events', 'sid'],
    });
    assert.equal(header.typ, 'logout+jwt');
    assert.equal(typeof payload.events, 'object', 'events is an object');
    assert.deepEqual(payload.events[BACKCHANNEL_EVENT], {}, 'the back-channel logout event');
    assert.equal(payload.sid, claims.sid, 'the logout token names the session of the ID token');
    if (payload.sub !== undefined) assert.equal(payload.sub, claims.sub);
    assert.equal('nonce' in payload, false, 'a logout token has no nonce');
    step(`back-channel logout token verified with the JWKS (${header.alg}, kid ${header.kid}, sid matches)`);

    // --- the session is gone --------------------------------------------------------
    const after = await authorization({ prompt: 'none' });
    const afterLanded = await browser.get(after.url.href);
    const afterCallback = assertAtRedirectUri(afterLanded, 'prompt=none after the logout');
    assert.equal(afterCallback.searchParams.get('error'), 'login_required', `after logout: ${afterLanded.url}`);
    step('prompt=none after the logout: login_required');
  } finally {
    receiver.server.close();
  }
  console.log(`all ${stepNumber} steps passed`);
}

main().catch((err) => {
  console.error(`not ok ${stepNumber + 1} - ${err?.message ?? err}`);
  if (err?.error) console.error(`  error: ${err.error}${err.error_description ? `: ${err.error_description}` : ''}`);
  if (err?.cause && !(err.cause instanceof URLSearchParams)) console.error('  cause:', err.cause);
  if (err?.stack) console.error(err.stack);
  process.exit(1);
});
