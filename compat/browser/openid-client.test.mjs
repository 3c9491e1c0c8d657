// npm openid-client (v6), a relying-party library no one here wrote, completes the browser
// flow against Tessera: discovery, an authorization URL with PKCE (S256), a nonce and a
// state; Chromium signs in and consents; then the library redeems the code and validates the
// ID token itself (signature from the JWKS, iss, aud, exp, nonce, state, RFC 9207 iss), reads
// userinfo, refreshes, and builds the logout URL. On EdDSA, ES256 and RS256 tenants.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as client from 'openid-client';
import { shot, startChromium, startReceiver, startTessera } from './harness.mjs';

const PASSWORD = "olga's long passphrase";
let tessera, rp, chromium;

before(async () => {
  tessera = await startTessera();
  rp = await startReceiver();
  chromium = await startChromium();
});

after(async () => {
  await chromium?.close();
  await rp?.close();
  await tessera?.stop();
});

/** A tenant (none for the default one) with a user and a public code-flow client. */
function setUp(tenant) {
  const t = tenant ? ['--tenant', tenant] : [];
  if (tenant) tessera.cli(['tenant', 'create', tenant, '--alg', tenant.split('-')[1].toUpperCase()]);
  tessera.cli(['user', 'create', ...t, '--username', 'olga', '--password-stdin', '--given-name', 'Olga'],
    `${PASSWORD}\n`);
  const id = tessera.cliJson(['client', 'create', ...t, '--name', 'Node Web App', '--public',
    '--grant', 'authorization_code,refresh_token', '--redirect-uri', `${rp.origin}/cb`,
    '--post-logout-redirect-uri', `${rp.origin}/bye`]).client_id;
  const issuer = tenant ? `${tessera.base}/t/${tenant}` : tessera.base;
  return { id, issuer };
}

async function discover(issuer, id) {
  // The server runs on http://127.0.0.1 here; openid-client refuses http unless told.
  for (let i = 0; ; i++) {
    try {
      return await client.discovery(new URL(issuer), id, undefined, client.None(), {
        execute: [client.allowInsecureRequests],
      });
    } catch (e) {
      // A tenant made by the CLI is served within a second (the server's change feed).
      if (i >= 40) throw e;
      await new Promise((ok) => setTimeout(ok, 250));
    }
  }
}

for (const [alg, tenant] of [['EdDSA', null], ['ES256', 'node-es256'], ['RS256', 'node-rs256']]) {
  test(`openid-client completes the flow and validates the ID token (${alg})`, async () => {
    const { id, issuer } = setUp(tenant);
    const config = await discover(issuer, id);
    assert.equal(config.serverMetadata().issuer, issuer);

    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.origin}/cb`,
      scope: 'openid profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state,
    });

    const ctx = await chromium.fresh();
    const page = await ctx.newPage();
    await page.goto(url.href);
    await page.fill('#username', 'olga');
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    await page.getByText('Allow access?').waitFor();
    if (alg === 'EdDSA') await shot(page, '20-openid-client-consent');
    await page.click('button[value=allow]');
    await page.waitForURL(`${rp.origin}/cb?**`);

    const tokens = await client.authorizationCodeGrant(config, new URL(page.url()), {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.equal(claims.sub, 'olga');
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.iss, issuer);
    assert.deepEqual(claims.amr, ['pwd']);
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, 'olga');
    assert.equal(info.given_name, 'Olga');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token && refreshed.refresh_token !== tokens.refresh_token, 'rotated');

    // The library's own checks catch a wrong nonce (a fresh code: consent is remembered).
    const again = client.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.origin}/cb`, scope: 'openid profile', nonce: client.randomNonce(),
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    await page.goto(again.href);
    await page.waitForURL(`${rp.origin}/cb?**`);
    await assert.rejects(
      client.authorizationCodeGrant(config, new URL(page.url()), {
        pkceCodeVerifier: verifier, expectedNonce: 'not-the-nonce', idTokenExpected: true,
      }),
      (e) => e.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && e.cause?.cause?.claim === 'nonce',
    );

    // RP-initiated logout, built by the library.
    const bye = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token, post_logout_redirect_uri: `${rp.origin}/bye`, state: 'done',
    });
    await page.goto(bye.href);
    await page.waitForURL(`${rp.origin}/bye?**`);
    assert.equal(rp.last().params.state, 'done');
    await page.goto(url.href);
    await page.locator('#password').waitFor();
    await ctx.close();
  });
}
