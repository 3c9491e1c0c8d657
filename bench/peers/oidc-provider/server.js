// node-oidc-provider configured for the same work as Tessera in bench/run: one confidential
// client (client_secret_basic) allowed client_credentials, JWT access tokens (RFC 9068,
// typ at+jwt) through resource indicators with accessTokenFormat 'jwt', signed with
// EdDSA (Ed25519), one hour lifetime; introspection enabled; JWKS at /jwks.
//
// oidc-provider refuses to introspect structured (JWT) tokens ("Structured JWT Tokens
// cannot be introspected"), so a second resource indicator, urn:bench:opaque, issues opaque
// access tokens: bench/run introspects one of those as the nearest comparable work.
//
// The refresh grant (bench/write's `refresh` scenario): every refresh token is rotated on use
// (rotateRefreshToken: true, as Tessera rotates), the reuse of a rotated one revokes its grant.
// oidc-provider issues refresh tokens only from an interactive flow (authorization code,
// device, CIBA), so `POST /bench/refresh-tokens?n=N` (this benchmark's own route, not part of
// the provider) makes N grants of the bench account with one refresh token each through the
// provider's models, as a finished code flow would have left them. Its storage is in memory
// (MapAdapter below): nothing is written to a disk or a database, so every rotation here is
// cheaper than a durable one.
//
// Environment: PORT (required), BENCH_CLIENT_ID, BENCH_CLIENT_SECRET. Prints
// "listening on 127.0.0.1:PORT" when ready.

import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
if (!port) {
  console.error('error: set PORT');
  process.exit(2);
}
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || crypto.randomBytes(32).toString('base64url');
const issuer = `http://127.0.0.1:${port}`;
const JWT_RESOURCE = 'https://api.bench.invalid';
const OPAQUE_RESOURCE = 'urn:bench:opaque';

const { privateKey } = crypto.generateKeyPairSync('ed25519');
const jwk = privateKey.export({ format: 'jwk' });
jwk.kid = crypto.randomBytes(12).toString('base64url');
jwk.alg = 'EdDSA';
jwk.use = 'sig';

// Storage: in memory, but without the provider's default adapter, an LRU of 1,000 entries
// meant for development: the refresh scenario keeps thousands of grants live and rotates tens
// of thousands of tokens, and an evicted grant would end its chain mid-run. This one keeps
// every entry until it expires (consumed refresh tokens too, as reuse detection needs them).
const entries = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const byGrant = new Map(); // grantId -> keys of the tokens of that grant
const byIndex = new Map(); // `uid:${uid}` or `userCode:${code}` -> key

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    entries.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(key);
    }
    if (payload.uid) byIndex.set(`uid:${payload.uid}`, key);
    if (payload.userCode) byIndex.set(`userCode:${payload.userCode}`, key);
  }

  async find(id) {
    return this.get(this.key(id));
  }

  async findByUid(uid) {
    return this.get(byIndex.get(`uid:${uid}`));
  }

  async findByUserCode(userCode) {
    return this.get(byIndex.get(`userCode:${userCode}`));
  }

  get(key) {
    const entry = key && entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async consume(id) {
    const entry = entries.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of byGrant.get(grantId) ?? []) entries.delete(key);
    byGrant.delete(grantId);
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      // With only an EdDSA key in the JWKS the client's default (RS256) cannot be met.
      id_token_signed_response_alg: 'EdDSA',
    },
  ],
  jwks: { keys: [jwk] },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  rotateRefreshToken: true,
  ttl: { AccessToken: 3600, Grant: 14 * 24 * 3600, RefreshToken: 14 * 24 * 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => JWT_RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => ({
        scope: 'api',
        audience: resourceIndicator,
        accessTokenTTL: 3600,
        accessTokenFormat: resourceIndicator === OPAQUE_RESOURCE ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'EdDSA' } },
      }),
    },
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['EdDSA'],
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path !== '/bench/refresh-tokens' || ctx.method !== 'POST') {
    await next();
    return;
  }
  const n = Math.min(Number(ctx.query.n) || 1, 10000);
  const client = await provider.Client.find(clientId);
  const tokens = [];
  for (let i = 0; i < n; i += 1) {
    const grant = new provider.Grant({ accountId: 'bench', clientId });
    grant.addResourceScope(JWT_RESOURCE, 'api');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      accountId: 'bench',
      client,
      grantId,
      gty: 'authorization_code',
      resource: JWT_RESOURCE,
      scope: 'api',
    });
    tokens.push(await token.save());
  }
  ctx.body = { refresh_tokens: tokens };
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
