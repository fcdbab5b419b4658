import fc from 'fast-check';
import {
  decodeJwtPayload,
  identityFromClaims,
  IdentityResolver,
  initiatorOf,
  PUBLIC_ACCESS,
  type Identity,
} from '../../src/identity/initiator';

const resolveOf = (r: IdentityResolver, header: string | undefined) => r.resolve(header).identity;

const APIKEY_GRANT = 'urn:ibm:params:oauth:grant-type:apikey';
const PASSCODE_GRANT = 'urn:ibm:params:oauth:grant-type:passcode';

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64url');
}

/** An unsigned-looking JWT: header.payload.signature, each part base64url. */
function jwt(payload: unknown, header: unknown = { alg: 'RS256', kid: '20240101' }): string {
  return `${b64url(header)}.${b64url(payload)}.${b64url('not-a-real-signature')}`;
}

function bearer(payload: unknown): string {
  return `Bearer ${jwt(payload)}`;
}

const USER_CLAIMS = {
  iam_id: 'IBMid-2700012345',
  id: 'IBMid-2700012345',
  realmid: 'IBMid',
  identifier: '2700012345',
  given_name: 'Jane',
  family_name: 'Doe',
  name: 'Jane Doe',
  email: 'jane@example.com',
  sub: 'jane@example.com',
  account: { valid: true, bss: 'b0f3c1a2d4e5f60718293a4b5c6d7e8f' },
  iat: 1700000000,
  exp: 1700003600,
  iss: 'https://iam.cloud.ibm.com/identity',
  grant_type: APIKEY_GRANT,
  scope: 'ibm openid',
  client_id: 'bx',
};

const SERVICE_ID_CLAIMS = {
  iam_id: 'iam-ServiceId-8f2b6c1e-0000-4000-8000-000000000001',
  id: 'iam-ServiceId-8f2b6c1e-0000-4000-8000-000000000001',
  realmid: 'iam',
  identifier: 'ServiceId-8f2b6c1e-0000-4000-8000-000000000001',
  name: 'ci-deployer',
  sub: 'ServiceId-8f2b6c1e-0000-4000-8000-000000000001',
  sub_type: 'ServiceId',
  account: { bss: 'acc-1' },
  grant_type: APIKEY_GRANT,
};

const CRN_CLAIMS = {
  iam_id: 'crn-crn:v1:bluemix:public:codeengine:us-south:a/acc-1:proj-1::',
  sub: 'crn:v1:bluemix:public:codeengine:us-south:a/acc-1:proj-1::',
  sub_type: 'CRN',
  account: { bss: 'acc-1' },
  grant_type: 'urn:ibm:params:oauth:grant-type:iam-authz',
};

describe('IdentityResolver.resolve', () => {
  test('a user (IBMid) token from an API key', () => {
    const identity = resolveOf(new IdentityResolver(), bearer(USER_CLAIMS));
    expect(identity).toEqual<Identity>({
      id: 'IBMid-2700012345',
      name: 'Jane Doe',
      typeURI: 'service/security/account/user',
      credentialType: 'apikey',
      accountId: 'b0f3c1a2d4e5f60718293a4b5c6d7e8f',
      authnId: undefined,
      authnName: undefined,
      verified: false,
    });
  });

  test('a service id token from an API key', () => {
    const identity = resolveOf(new IdentityResolver(), bearer(SERVICE_ID_CLAIMS));
    expect(identity.id).toBe('iam-ServiceId-8f2b6c1e-0000-4000-8000-000000000001');
    expect(identity.name).toBe('ci-deployer');
    expect(identity.typeURI).toBe('service/security/account/serviceid');
    expect(identity.credentialType).toBe('apikey-serviceid');
    expect(identity.accountId).toBe('acc-1');
  });

  test('a service id is recognised by its iam_id alone, without sub_type', () => {
    const { sub_type: _ignored, ...claims } = SERVICE_ID_CLAIMS;
    const identity = resolveOf(new IdentityResolver(), bearer(claims));
    expect(identity.typeURI).toBe('service/security/account/serviceid');
    expect(identity.credentialType).toBe('apikey-serviceid');
  });

  test('a CRN token (a service acting for itself)', () => {
    const identity = resolveOf(new IdentityResolver(), bearer(CRN_CLAIMS));
    expect(identity.id).toBe('crn-crn:v1:bluemix:public:codeengine:us-south:a/acc-1:proj-1::');
    expect(identity.typeURI).toBe('service/security/clientid');
    expect(identity.credentialType).toBe('token');
    expect(identity.name).toBe('crn:v1:bluemix:public:codeengine:us-south:a/acc-1:proj-1::');
  });

  test('a passcode grant (console / CLI login) is a user credential', () => {
    const identity = resolveOf(new IdentityResolver(), bearer({ ...USER_CLAIMS, grant_type: PASSCODE_GRANT }));
    expect(identity.credentialType).toBe('user');
    expect(identity.typeURI).toBe('service/security/account/user');
  });

  test.each([
    ['password', 'user'],
    ['authorization_code', 'user'],
    ['urn:ibm:params:oauth:grant-type:iam-authz', 'token'],
    ['refresh_token', 'token'],
    ['urn:ibm:params:oauth:grant-type:cr-token', 'certificate'],
  ])('grant_type %s -> credential type %s', (grant, type) => {
    expect(resolveOf(new IdentityResolver(), bearer({ ...USER_CLAIMS, grant_type: grant })).credentialType).toBe(type);
  });

  test('delegated tokens report the logged-in identity as authnId / authnName', () => {
    const identity = resolveOf(
      new IdentityResolver(),
      bearer({
        ...SERVICE_ID_CLAIMS,
        grant_type: 'urn:ibm:params:oauth:grant-type:iam-authz',
        authn: { iam_id: 'IBMid-999', name: 'Operator Olga', sub: 'olga@example.com' },
      }),
    );
    expect(identity.id).toBe(SERVICE_ID_CLAIMS.iam_id);
    expect(identity.authnId).toBe('IBMid-999');
    expect(identity.authnName).toBe('Operator Olga');
  });

  test('authnName falls back to authn.sub; an authn equal to the bearer is not delegation', () => {
    const bySub = resolveOf(new IdentityResolver(), bearer({ ...USER_CLAIMS, authn: { iam_id: 'IBMid-999', sub: 'olga@example.com' } }));
    expect(bySub.authnName).toBe('olga@example.com');
    const self = resolveOf(new IdentityResolver(), bearer({ ...USER_CLAIMS, authn: { iam_id: USER_CLAIMS.iam_id, name: 'Jane Doe' } }));
    expect(self.authnId).toBeUndefined();
    expect(self.authnName).toBeUndefined();
  });

  test('no Authorization header is public access', () => {
    const resolver = new IdentityResolver();
    expect(resolveOf(resolver, undefined)).toBe(PUBLIC_ACCESS);
    expect(resolveOf(resolver, '')).toBe(PUBLIC_ACCESS);
    expect(PUBLIC_ACCESS.credentialType).toBe('public-access');
    expect(PUBLIC_ACCESS.id).toBe('public-access');
  });

  test.each([
    ['Basic credentials', 'Basic dXNlcjpwYXNzd29yZA=='],
    ['a bare token', jwt(USER_CLAIMS)],
    ['a bearer of garbage', 'Bearer not-a-jwt'],
    ['too few parts', `Bearer ${b64url({ alg: 'none' })}.${b64url(USER_CLAIMS)}`],
    ['too many parts', `Bearer ${jwt(USER_CLAIMS)}.extra`],
    ['an empty header part', `Bearer .${b64url(USER_CLAIMS)}.sig`],
    ['a non-JSON payload', `Bearer ${b64url({ alg: 'RS256' })}.${b64url('this is not json')}.sig`],
    ['a JSON array payload', `Bearer ${jwt([1, 2, 3])}`],
    ['a JSON string payload', `Bearer ${jwt('"just a string"')}`],
    ['a null payload', `Bearer ${b64url({ alg: 'RS256' })}.${b64url('null')}.sig`],
    ['two tokens', `Bearer ${jwt(USER_CLAIMS)} ${jwt(USER_CLAIMS)}`],
  ])('%s -> credential type token, id unknown', (_label, header) => {
    const identity = resolveOf(new IdentityResolver(), header);
    expect(identity.credentialType).toBe('token');
    expect(identity.id).toBe('unknown');
    expect(identity.name).toBe('unknown');
    expect(identity.accountId).toBeUndefined();
  });

  test('the scheme is case-insensitive and surrounding whitespace is tolerated', () => {
    const resolver = new IdentityResolver();
    expect(resolveOf(resolver, `bearer ${jwt(USER_CLAIMS)}`).id).toBe('IBMid-2700012345');
    expect(resolveOf(resolver, `BEARER   ${jwt(USER_CLAIMS)}  `).id).toBe('IBMid-2700012345');
  });

  test('an empty claims object yields unknown ids but still a token credential', () => {
    const identity = resolveOf(new IdentityResolver(), bearer({}));
    expect(identity.id).toBe('unknown');
    expect(identity.credentialType).toBe('token');
    expect(identity.typeURI).toBe('service/security/account/user');
  });

  test('claims of the wrong types are ignored', () => {
    const identity = resolveOf(
      new IdentityResolver(),
      bearer({ iam_id: 42, sub: ['x'], name: { a: 1 }, grant_type: 7, account: 'acc', authn: null }),
    );
    expect(identity).toEqual<Identity>({
      id: 'unknown',
      name: 'unknown',
      typeURI: 'service/security/account/user',
      credentialType: 'token',
      accountId: undefined,
      authnId: undefined,
      authnName: undefined,
      verified: false,
    });
  });

  test('the resolver caches per token: the same object comes back', () => {
    const resolver = new IdentityResolver();
    const header = bearer(USER_CLAIMS);
    const first = resolveOf(resolver, header);
    expect(resolveOf(resolver, header)).toBe(first);
    expect(resolveOf(resolver, header.replace('Bearer ', 'bearer  '))).toBe(first);
    const other = resolveOf(resolver, bearer(SERVICE_ID_CLAIMS));
    expect(other).not.toBe(first);
    expect(other.id).not.toBe(first.id);
  });

  test('the cache is bounded and keeps answering correctly after it is flushed', () => {
    const resolver = new IdentityResolver();
    const first = resolveOf(resolver, bearer({ ...USER_CLAIMS, iam_id: 'IBMid-0' }));
    for (let i = 1; i <= 1100; i++) expect(resolveOf(resolver, bearer({ ...USER_CLAIMS, iam_id: `IBMid-${i}` })).id).toBe(`IBMid-${i}`);
    const again = resolveOf(resolver, bearer({ ...USER_CLAIMS, iam_id: 'IBMid-0' }));
    expect(again).toEqual(first);
  });
});

describe('claim hygiene', () => {
  test('control characters are removed from claims', () => {
    const identity = resolveOf(
      new IdentityResolver(),
      bearer({ ...USER_CLAIMS, iam_id: 'IBMid-1\n\r\u0000\u001b[31m', name: 'Jane\tDoe\u007f' }),
    );
    expect(identity.id).toBe('IBMid-1[31m');
    expect(identity.name).toBe('JaneDoe');
  });

  test('over-long claims are bounded to 256 characters', () => {
    const long = `IBMid-${'x'.repeat(5000)}`;
    const identity = resolveOf(
      new IdentityResolver(),
      bearer({
        ...USER_CLAIMS,
        iam_id: long,
        name: 'n'.repeat(1000),
        account: { bss: 'a'.repeat(1000) },
        authn: { iam_id: 'IBMid-'.padEnd(900, 'z'), name: 'm'.repeat(900) },
      }),
    );
    expect(identity.id).toBe(long.slice(0, 256));
    expect(identity.name).toHaveLength(256);
    expect(identity.accountId).toHaveLength(256);
    expect(identity.authnId).toHaveLength(256);
    expect(identity.authnName).toHaveLength(256);
  });

  test('property: every string in an identity is bounded and free of control characters', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ unit: 'binary-ascii', maxLength: 20 }),
      fc.string({ unit: 'grapheme', maxLength: 10 }),
    );
    // Long claims are built by repetition: cheap to generate, and past the 256-character bound.
    const claim = fc.oneof(
      text,
      text.map((t) => t.repeat(40)),
      fc.integer(),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(
        fc.record({ iam_id: claim, sub: claim, name: claim, email: claim, grant_type: claim, sub_type: claim }),
        fc.record({ bss: claim }),
        fc.record({ iam_id: claim, name: claim, sub: claim }),
        (base, account, authn) => {
          const identity = resolveOf(new IdentityResolver(), bearer({ ...base, account, authn }));
          // A boolean predicate: fast-check reports the counterexample when it returns false.
          const { verified, ...strings } = identity;
          return (
            verified === false &&
            Object.values(strings).every(
              (value) => value === undefined || (typeof value === 'string' && value.length <= 256 && !/[\x00-\x1f\x7f]/.test(value)),
            )
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  // Regression: a claim of control characters only became '' and an empty initiator.id (the schema needs one).
  test('a claim made only of control characters counts as missing', () => {
    const identity = identityFromClaims({ iam_id: '\u0000\u0001\n', sub: 'jane@example.com' });
    expect(identity.id).toBe('jane@example.com');
    const nameless = identityFromClaims({ iam_id: 'IBMid-1', name: '\u001b' });
    expect(nameless.name).toBe('IBMid-1');
  });
});

describe('decodeJwtPayload / identityFromClaims / initiatorOf', () => {
  test('decodes the payload without verifying it', () => {
    expect(decodeJwtPayload(jwt({ iam_id: 'IBMid-1' }))).toEqual({ iam_id: 'IBMid-1' });
    expect(decodeJwtPayload('a.b')).toBeUndefined();
    expect(decodeJwtPayload('')).toBeUndefined();
  });

  test('a Profile (trusted profile) token', () => {
    const identity = identityFromClaims({
      iam_id: 'iam-Profile-1234',
      sub_type: 'Profile',
      grant_type: 'urn:ibm:params:oauth:grant-type:cr-token',
    });
    expect(identity.typeURI).toBe('service/security/account/profile');
    expect(identity.credentialType).toBe('certificate');
  });

  test('initiatorOf builds the event initiator, with authn fields only when delegated', () => {
    const plain = identityFromClaims(USER_CLAIMS);
    expect(initiatorOf(plain, '203.0.113.7', 'IPv4', 'ibmcloud-cli/2.20')).toEqual({
      id: 'IBMid-2700012345',
      name: 'Jane Doe',
      typeURI: 'service/security/account/user',
      credential: { type: 'apikey', verified: false },
      host: { address: '203.0.113.7', addressType: 'IPv4', agent: 'ibmcloud-cli/2.20' },
    });
    expect(Object.keys(initiatorOf(plain, '::1', 'IPv6', ''))).not.toContain('authnId');
    const delegated = identityFromClaims({ ...SERVICE_ID_CLAIMS, authn: { iam_id: 'IBMid-9', name: 'Olga' } });
    expect(initiatorOf(delegated, '::1', 'IPv6', 'kubectl')).toMatchObject({
      authnId: 'IBMid-9',
      authnName: 'Olga',
      host: { addressType: 'IPv6' },
    });
  });

  test('the token never appears in the identity', () => {
    const token = jwt(USER_CLAIMS);
    const identity = resolveOf(new IdentityResolver(), `Bearer ${token}`);
    const text = JSON.stringify(identity);
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.split('.')[2] as string);
  });
});
