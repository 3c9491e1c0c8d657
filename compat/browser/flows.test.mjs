// A person signs in through Tessera's pages in real Chromium: a wrong password then the right
// one, consent, the redirect back with a code the app redeems (PKCE S256); the same with a
// one-time code, and with two-step verification set up on the way when the account needs it;
// a second app approved from the live session; RP-initiated logout; two
// devices, one approved and one denied while their pollers wait. Every page is saved as a
// screenshot (desktop and phone) in target/browser-e2e/.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { claims, pkce, postForm, randomText, shot, sleep, startChromium, startReceiver, startTessera, totp }
  from './harness.mjs';

const PASSWORD = "erin's long passphrase";
const TOM_PASSWORD = "tom's long passphrase";
let tessera, rp, chromium, photos, calendar, tv, tomSecret, tomRecovery;
let erin; // Erin's browser context (her session lives here)

before(async () => {
  tessera = await startTessera({ TESSERA_DEVICE_INTERVAL: '1' });
  rp = await startReceiver();
  chromium = await startChromium();
  const profile = ['--given-name', 'Erin', '--last-name', 'Example', '--email', 'erin@example.org'];
  tessera.cli(['user', 'create', '--username', 'erin', '--password-stdin', ...profile], `${PASSWORD}\n`);
  tessera.cli(['user', 'create', '--username', 'tom', '--password-stdin'], `${TOM_PASSWORD}\n`);
  const enrol = tessera.cliJson(['user', 'totp', 'enable', '--username', 'tom']);
  tomSecret = enrol.secret;
  const now = Date.now() / 1000;
  const confirmed = tessera.cliJson(['user', 'totp', 'confirm', '--username', 'tom', '--code', totp(tomSecret, now)]);
  tomRecovery = confirmed.recovery_codes;
  const codeClient = (name) => tessera.cliJson([
    'client', 'create', '--name', name, '--grant', 'authorization_code,refresh_token', '--public',
    '--redirect-uri', `${rp.origin}/cb`, '--post-logout-redirect-uri', `${rp.origin}/bye`,
  ]).client_id;
  photos = codeClient('Photo Album');
  calendar = codeClient('Team Calendar');
  tv = tessera.cliJson(['client', 'create', '--name', 'Living-room TV', '--public', '--scope', 'tv',
    '--grant', 'urn:ietf:params:oauth:grant-type:device_code']).client_id;
  erin = await chromium.fresh();
});

after(async () => {
  await chromium?.close();
  await rp?.close();
  await tessera?.stop();
});

/** An authorization request of `client` (code, PKCE S256, OpenID Connect). */
function authorizeUrl(client, extra = {}) {
  const { verifier, challenge } = pkce();
  const state = randomText();
  const nonce = randomText();
  const url = new URL(`${tessera.base}/oauth2/authorize`);
  const params = {
    response_type: 'code', client_id: client, redirect_uri: `${rp.origin}/cb`, scope: 'openid profile email',
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return { url: url.href, verifier, state, nonce };
}

/** A browser of its own at Photo Album's sign-in page, the password typed and sent. */
async function signInFresh(username, password) {
  const ctx = await chromium.fresh();
  const page = await ctx.newPage();
  const req = authorizeUrl(photos);
  await page.goto(req.url);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  return { ctx, page, req };
}

/** Consent, the code redeemed: the ID token says `who` gave a password and a one-time code. */
async function allowAndRedeemWithTwoFactors(ctx, page, req, who) {
  await page.getByText('Allow access?').waitFor();
  await page.click('button[value=allow]');
  const { id } = await redeem(page, photos, req);
  assert.equal(id.sub, who);
  assert.deepEqual(id.amr, ['pwd', 'otp']);
  await ctx.close();
}

/** The app's side: the redirect it got (state and iss checked), the code redeemed. */
async function redeem(page, client, req) {
  await page.waitForURL(`${rp.origin}/cb?**`);
  const back = rp.last().params;
  assert.equal(back.state, req.state);
  assert.equal(back.iss, tessera.base);
  assert.match(back.code, /^tsa_/);
  const r = await postForm(`${tessera.base}/oauth2/token`, {
    grant_type: 'authorization_code', client_id: client, code: back.code,
    redirect_uri: `${rp.origin}/cb`, code_verifier: req.verifier,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const id = claims(r.json.id_token);
  assert.equal(id.nonce, req.nonce);
  assert.equal(id.aud, client);
  return { tokens: r.json, id };
}

test('a person signs in (a wrong password first), consents and the app redeems the code', async () => {
  const page = await erin.newPage();
  const req = authorizeUrl(photos);
  await page.goto(req.url);
  await assert.doesNotReject(page.getByText('Photo Album').first().waitFor());
  assert.match(await page.textContent('body'), /default/);
  await shot(page, '01-login');
  await page.fill('#username', 'erin');
  await page.fill('#password', 'not my password');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert.equal(await page.getByRole('alert').textContent(), 'Wrong username or password.');
  assert.equal(await page.inputValue('#username'), 'erin', 'the username is kept');
  await shot(page, '02-login-wrong-password');
  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.getByText('Allow access?').waitFor();
  assert.match(await page.textContent('main'), /see your email address/);
  await shot(page, '03-consent');
  await page.click('button[value=allow]');
  const { tokens, id } = await redeem(page, photos, req);
  assert.equal(id.sub, 'erin');
  assert.deepEqual(id.amr, ['pwd']);
  assert.match(tokens.refresh_token, /^tsr_/);
  const ui = await fetch(`${tessera.base}/oauth2/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal((await ui.json()).email, 'erin@example.org');
  await page.close();
});

test('a second app is approved from the live session without the password', async () => {
  const page = await erin.newPage();
  const req = authorizeUrl(calendar);
  await page.goto(req.url);
  await page.getByText('Allow access?').waitFor();
  assert.match(await page.textContent('main'), /Team Calendar/);
  assert.equal(await page.locator('input[type=password]').count(), 0, 'the password is asked again');
  await shot(page, '04-consent-second-app');
  await page.click('button[value=allow]');
  const { id } = await redeem(page, calendar, req);
  assert.equal(id.sub, 'erin');
  await page.close();
});

test('a person with two-factor authentication gives their one-time code', async () => {
  const { ctx, page, req } = await signInFresh('tom', TOM_PASSWORD);
  await page.getByText('Two-step verification').waitFor();
  await shot(page, '05-one-time-code');
  await page.fill('#otp', '000000');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /code is wrong/);
  await shot(page, '06-one-time-code-wrong');
  // The enrolment spent the current step's code; the next step's is accepted (RFC 6238 +-1).
  await page.fill('#otp', totp(tomSecret, Date.now() / 1000 + 30));
  await page.click('button[type=submit]');
  await allowAndRedeemWithTwoFactors(ctx, page, req, 'tom');
});

test('a person whose account needs two-step verification sets it up while signing in', async () => {
  const password = "nina's long passphrase";
  tessera.cli(['user', 'create', '--username', 'nina', '--password-stdin'], `${password}\n`);
  tessera.cli(['user', 'update', '--username', 'nina', '--require-totp', 'true']);
  const { ctx, page, req } = await signInFresh('nina', password);
  await page.getByText('Set up two-step verification').first().waitFor();
  const secret = (await page.locator('p.code').textContent()).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{16,}=*$/, 'the key to type in the app');
  assert.match(await page.getAttribute('a[href^="otpauth://"]', 'href'), /^otpauth:\/\/totp\//);
  await shot(page, '17-two-step-setup');
  await page.fill('#otp', '000000');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  await page.fill('#otp', totp(secret, Date.now() / 1000));
  await page.click('button[type=submit]');
  await page.getByText('Keep these recovery codes').waitFor();
  const codes = await page.locator('li.code').allTextContents();
  assert.equal(codes.length, 10, 'ten recovery codes, shown once');
  await shot(page, '18-recovery-codes');
  await page.click('button[type=submit]');
  await allowAndRedeemWithTwoFactors(ctx, page, req, 'nina');
});

test('a person approves one device and denies another while the pollers wait', async () => {
  const start = () => postForm(`${tessera.base}/oauth2/device_authorization`, { client_id: tv, scope: 'tv' });
  const [one, two] = (await Promise.all([start(), start()])).map((r) => r.json);
  // The device's side: poll at the interval until an answer (bounded).
  const poll = async (d) => {
    for (let i = 0; i < 120; i++) {
      await sleep(d.interval * 1000);
      const r = await postForm(`${tessera.base}/oauth2/token`, {
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: d.device_code, client_id: tv,
      });
      if (r.json.error !== 'authorization_pending' && r.json.error !== 'slow_down') return r;
    }
    throw new Error('no answer');
  };
  const pollers = [poll(one), poll(two)];

  // Erin is signed in: the link with the code opens the decision at once.
  const page = await erin.newPage();
  await page.goto(one.verification_uri_complete);
  await page.getByText('Approve this device?').waitFor();
  const text = await page.textContent('main');
  for (const shown of ['Living-room TV', 'erin', one.user_code, 'default']) assert.ok(text.includes(shown), shown);
  assert.equal(await page.locator('input[type=password]').count(), 0);
  await shot(page, '07-device-decide-signed-in');
  await page.click('button[value=approve]');
  await page.getByText('Device connected').waitFor();
  await shot(page, '08-device-approved');
  await page.close();

  // Someone without a session types the code, signs in, and denies.
  const ctx = await chromium.fresh();
  const other = await ctx.newPage();
  await other.goto(two.verification_uri);
  await shot(other, '09-device-enter-code');
  await other.fill('#user_code', 'nonsense');
  await other.click('button[type=submit]');
  await other.getByRole('alert').waitFor();
  await shot(other, '10-device-bad-code');
  await other.fill('#user_code', two.user_code.toLowerCase().replace('-', ''));
  await other.click('button[type=submit]');
  await other.locator('#password').waitFor();
  await shot(other, '11-device-sign-in');
  await other.fill('#username', 'tom');
  await other.fill('#password', TOM_PASSWORD);
  await other.fill('#otp', tomRecovery[0]); // a recovery code works too
  await other.click('button[type=submit]');
  await other.getByText('Approve this device?').waitFor();
  await other.click('button[value=deny]');
  await other.getByText('Request denied').waitFor();
  await shot(other, '12-device-denied');
  await ctx.close();

  const [approved, denied] = await Promise.all(pollers);
  assert.equal(approved.status, 200, JSON.stringify(approved.json));
  assert.equal(claims(approved.json.access_token).sub, 'erin');
  assert.equal(denied.status, 400);
  assert.equal(denied.json.error, 'access_denied');
});

test('logout (RP-initiated) ends the session: the next sign-in asks for the password', async () => {
  const page = await erin.newPage();
  const req = authorizeUrl(photos);
  await page.goto(req.url); // consent remembered: straight back to the app
  const { tokens } = await redeem(page, photos, req);
  const url = new URL(`${tessera.base}/oauth2/logout`);
  url.searchParams.set('id_token_hint', tokens.id_token);
  url.searchParams.set('post_logout_redirect_uri', `${rp.origin}/bye`);
  url.searchParams.set('state', 'bye-1');
  await page.goto(url.href);
  await page.waitForURL(`${rp.origin}/bye?**`);
  assert.equal(rp.last().params.state, 'bye-1');
  await page.goto(authorizeUrl(photos).url);
  await page.locator('#password').waitFor();
  assert.match(await page.textContent('main'), /Sign in/);
  // Without a hint the person is asked first.
  await page.fill('#username', 'erin');
  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${rp.origin}/cb?**`);
  await page.goto(`${tessera.base}/oauth2/logout`);
  await page.getByText('Sign out?').waitFor();
  await shot(page, '13-logout-confirm');
  await page.click('button[type=submit]');
  await page.getByText('You are signed out').waitFor();
  await shot(page, '14-signed-out');
  await page.close();
});

test('an unknown app or an unregistered redirect URI gets an error page, not a redirect', async () => {
  const ctx = await chromium.fresh();
  const page = await ctx.newPage();
  const res = await page.goto(authorizeUrl('no-such-app').url);
  assert.equal(res.status(), 400);
  await page.getByText('Sign-in error').waitFor();
  await shot(page, '15-error-unknown-app');
  // A redirect URI the app did not register: no redirect either, and the reason in small print.
  const tricked = authorizeUrl(photos, { redirect_uri: `${rp.origin}/cb/../evil` });
  const hits = rp.hits.length;
  assert.equal((await page.goto(tricked.url)).status(), 400);
  assert.match(await page.textContent('main'), /redirect_uri is not registered/);
  assert.equal(rp.hits.length, hits, 'the browser was sent to the app');
  await shot(page, '16-error-unregistered-redirect');
  await ctx.close();
});
