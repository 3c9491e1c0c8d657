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
// provider's models, as a finished code flow would have left them. Its storage is the default
// in-memory adapter: nothing is written to a disk or a database, so every rotation here is
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

const provider = new Provider(issuer, {
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
