// The pdvault organization flow with oauth4webapi (a certified OAuth 2 /
// OpenID client with DPoP) and jose, as published. PDVAULT_ISSUER names
// the vault; its certificate comes in through NODE_EXTRA_CA_CERTS. Lines on
// stdout tell the Go side (js_test.go) where the flow is: DEVICE_CODE,
// PENDING, then RESULT with what was read.
import * as oauth from 'oauth4webapi'
import * as jose from 'jose'

const issuer = new URL(process.env.PDVAULT_ISSUER)
const say = (...a) => console.log(...a)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Discovery (RFC 8414).
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2' }))

// The organization's key (Ed25519, RFC 9864 alg name) and its RFC 7638
// thumbprint, which is its client_id.
const { privateKey, publicKey } = await oauth.generateKeyPair('Ed25519')
const jwk = await crypto.subtle.exportKey('jwk', publicKey)
const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
const clientId = await jose.calculateJwkThumbprint(publicJwk)
const client = { client_id: clientId }

// The owner's terms: their hash goes into the request.
const terms = await (await fetch(as.terms_endpoint)).json()

// The request object (RFC 9101) as oauth4webapi issues it: every
// parameter a string, iss/aud/iat/nbf/exp/jti/client_id added. The vault
// knows no keys in advance, so the public key travels in the header:
// modifyAssertion is oauth4webapi's published hook for exactly that.
const request = await oauth.issueRequestObject(as, client, {
  client_name: 'Acme Bikes (JS)',
  client_uri: 'https://acme.example',
  purpose: 'service_delivery',
  duration: '3600',
  terms_hash: terms.hash,
  authorization_details: JSON.stringify([{ type: 'pdvault_records', collection: 'profile', fields: ['name', 'email'] }]),
}, privateKey, { [oauth.modifyAssertion]: (header) => { header.jwk = publicJwk } })

// Device authorization (RFC 8628 §3.1/3.2).
const da = await oauth.processDeviceAuthorizationResponse(as, client,
  await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { request }))
if (!da.user_code || !da.verification_uri) throw new Error('device authorization without user_code or verification_uri')
say('DEVICE_CODE', da.device_code)

// Polling with DPoP (RFC 8628 §3.4, RFC 9449).
const DPoP = oauth.DPoP(client, { privateKey, publicKey })
let token
let pending = 0
for (;;) {
  try {
    token = await oauth.processDeviceCodeResponse(as, client,
      await oauth.deviceCodeGrantRequest(as, client, oauth.None(), da.device_code, { DPoP }))
    break
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError && err.error === 'authorization_pending') {
      pending++
      say('PENDING')
      await sleep((da.interval ?? 5) * 1000)
      continue
    }
    throw err
  }
}
if (token.token_type !== 'dpop') throw new Error('token_type ' + token.token_type)

// A read (RFC 9449 §7).
const dataURL = new URL(as.data_endpoint + '/profile')
const read = await oauth.protectedResourceRequest(token.access_token, 'GET', dataURL, undefined, undefined, { DPoP })
if (read.status !== 200) throw new Error('read ' + read.status)
const page = await read.json()

// A DPoP proof made with jose, for the two steps oauth4webapi has no DPoP
// option for: introspection, and the resource-side validation below.
const proof = async (htm, htu, accessToken) => new jose.SignJWT({
  htm, htu, jti: crypto.randomUUID(),
  ath: jose.base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken)))),
}).setProtectedHeader({ alg: 'Ed25519', typ: 'dpop+jwt', jwk: publicJwk }).setIssuedAt().sign(privateKey)

// Introspection (RFC 7662): the client authenticates as the grant's holder
// through oauth4webapi's ClientAuth extension point.
const holderAuth = async (_as, _client, _body, headers) => {
  headers.set('authorization', 'DPoP ' + token.access_token)
  headers.set('dpop', await proof('POST', as.introspection_endpoint, token.access_token))
}
const introspection = await oauth.processIntrospectionResponse(as, client,
  await oauth.introspectionRequest(as, client, holderAuth, token.access_token))
if (!introspection.active || introspection.client_id !== clientId) throw new Error('introspection ' + JSON.stringify(introspection))

// The grant validated as an RFC 9068 JWT access token, with its DPoP
// binding, the way a resource server would (oauth4webapi, unchanged).
const claims = await oauth.validateJwtAccessToken(as, new Request(dataURL, {
  headers: { authorization: 'DPoP ' + token.access_token, dpop: await proof('GET', dataURL.href, token.access_token) },
}), as.issuer, { requireDPoP: true })
if (claims.client_id !== clientId || claims.cnf?.jkt !== clientId) throw new Error('grant claims ' + JSON.stringify(claims))

// Release (RFC 7009) with client authentication "none".
await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, oauth.None(), token.access_token))
let after
try {
  after = (await oauth.protectedResourceRequest(token.access_token, 'GET', dataURL, undefined, undefined, { DPoP })).status
} catch (err) {
  if (!(err instanceof oauth.WWWAuthenticateChallengeError)) throw err
  after = err.status
}

say('RESULT', JSON.stringify({ records: page.records, pending, user_code: da.user_code, after_release: after, alg: 'Ed25519' }))
