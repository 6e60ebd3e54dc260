// A real OpenID provider (panva's oidc-provider) for Konfig's single sign-on tests.
// Run by tests/support/oidc.py: `node provider.mjs` with OIDC_PORT and OIDC_CONFIG (JSON:
// {clients: [{client_id, client_secret, redirect_uris}], accounts: {id: claims}, kid}).
// Sign-in is oidc-provider's development form: the account id as login, any password.
// Consent is given at once. Test-only endpoints under /test/ change what the provider says:
//   PUT /test/accounts/:id   the account's claims (e.g. remove it from a group)
//   PUT /test/tamper         {"id_token": true}: token answers carry an altered ID token
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const config = JSON.parse(process.env.OIDC_CONFIG);
const issuer = `http://127.0.0.1:${port}`;
const accounts = config.accounts;
const tamper = { id_token: false };

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: config.kid, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    ...client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  conformIdTokenClaims: false, // the ID token carries email and groups itself
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  jwks: { keys: [jwk] },
  cookies: { keys: ['konfig-test-provider'] },
  ttl: { AuthorizationCode: 120, IdToken: 600, AccessToken: 600, Interaction: 600, Session: 600, Grant: 600 },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

async function body(ctx) {
  let text = '';
  for await (const chunk of ctx.req) text += chunk;
  return JSON.parse(text || '{}');
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/test/accounts/') && ctx.method === 'PUT') {
    accounts[decodeURIComponent(ctx.path.slice('/test/accounts/'.length))] = await body(ctx);
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/test/tamper' && ctx.method === 'PUT') {
    Object.assign(tamper, await body(ctx));
    ctx.status = 204;
    return;
  }
  await next();
  if (tamper.id_token && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    // The signature kept, the claims changed: what a forger who cannot sign would send.
    const [header, payload, signature] = ctx.body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url'));
    claims.groups = ['platform-admins'];
    const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
    ctx.body = { ...ctx.body, id_token: [header, forged, signature].join('.') };
  }
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
