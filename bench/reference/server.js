// The reference OpenID Connect provider of bench/run: panva's oidc-provider (OpenID
// Certified), default in-memory adapter, one process, one ES256 key, one confidential
// client (client_secret_basic), client credentials, introspection and revocation; a
// second client, client_credentials only, for bench/run's client_credentials_opaque row
// (its tokens are opaque like the first one's: see resourceIndicators below).
// The login interaction is a plain username/password form whose password is checked
// with argon2id at the IdP's parameters (m=19456, t=2, p=1), so both logins pay the
// same hash. Everything comes from the environment set by bench/run.

import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';
import { hash, verify, Algorithm } from '@node-rs/argon2';

const env = (name, fallback) => process.env[name] ?? fallback;
const PORT = Number(env('PORT', '8790'));
const ISSUER = env('ISSUER', `http://127.0.0.1:${PORT}`);
const CLIENT_ID = env('CLIENT_ID', 'bench');
const CLIENT_SECRET = env('CLIENT_SECRET', 'bench-secret');
const OPAQUE_CLIENT_ID = env('OPAQUE_CLIENT_ID', 'bench-opaque');
const OPAQUE_CLIENT_SECRET = env('OPAQUE_CLIENT_SECRET', 'bench-opaque-secret');
const REDIRECT_URI = env('REDIRECT_URI', 'http://127.0.0.1:9/cb');
const USER_PREFIX = env('USER_PREFIX', 'bench.user');
const USER_COUNT = Number(env('USER_COUNT', '1000'));
const PASSWORD = env('PASSWORD', 'Bench-Passw0rd!');
const ARGON2 = { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 };

// Every account has the same password, hence one hash (with its salt) for all: the
// verify cost per login is what matters, and it is identical.
const passwordHash = await hash(PASSWORD, ARGON2);
const accountExists = (username) => {
  if (!username.startsWith(USER_PREFIX)) return false;
  const n = Number(username.slice(USER_PREFIX.length));
  return Number.isInteger(n) && n >= 0 && n < USER_COUNT;
};

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: 'bench-es256' };

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }, {
    client_id: OPAQUE_CLIENT_ID,
    client_secret: OPAQUE_CLIENT_SECRET,
    redirect_uris: [],
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['bench-only-cookie-key-0123456789abcdef'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      name: 'Bench User',
      given_name: 'Bench',
      family_name: 'User',
      preferred_username: id,
      email: `${id}@example.it`,
      email_verified: true,
    }),
  }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // FIELD-NOTES: client-credentials tokens through resource indicators, opaque.
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx) => (ctx.oidc.params?.grant_type === 'client_credentials' ? 'urn:bench:api' : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({ scope: 'api', accessTokenFormat: 'opaque', accessTokenTTL: 3600 }),
    },
  },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'api'],
  // First-party client: no consent screen (oidc-provider's documented recipe).
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email offline_access');
    await grant.save();
    return grant;
  },
  // Same behaviour as the IdP: every code exchange gets a refresh token, rotated at each use.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
    AuthorizationCode: 60,
    IdToken: 300,
    RefreshToken: 28800,
    Grant: 2592000,
    Session: 28800,
    Interaction: 900,
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function loginPage(res, uid, error) {
  res.statusCode = 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><html><body>${error ? `<p>${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input type="text" name="username"><input type="password" name="password"><button>Accedi</button>
</form></body></html>`);
}

async function interactions(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') return loginPage(res, uid);
    // Never reached with loadExistingGrant above; finish it anyway.
    return provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
  }
  const form = await readForm(req);
  const username = (form.get('username') || '').trim().toLowerCase();
  const password = form.get('password') || '';
  const ok = await verify(passwordHash, password, ARGON2);
  if (!ok || !accountExists(username)) return loginPage(res, uid, 'Username o password non corretti.');
  return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interactions(req, res).catch((e) => {
      console.error('interaction', e);
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(PORT, '127.0.0.1', () => console.log(`reference oidc-provider on ${ISSUER}`));
