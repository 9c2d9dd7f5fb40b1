//! A fake Entra ID authority: OIDC metadata and a JWKS document, with RSA keys generated at
//! test time (never committed), that mints RS256 tokens (reference §12).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::lock;

/// Bits of the generated keys: the size Entra uses.
const KEY_BITS: usize = 2048;

/// One signing key: its id, its private half for minting, its public half for the JWKS.
#[derive(Clone)]
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

/// Keys are slow to generate in an unoptimized build, so every fake in a test binary draws
/// from one pool: key `n` is generated the first time anyone asks for it.
fn pooled_key(n: usize) -> Key {
    static POOL: OnceLock<Mutex<Vec<Key>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = lock(pool);
    while keys.len() <= n {
        let kid = format!("test-key-{}", keys.len() + 1);
        keys.push(generate(kid));
    }
    keys[n].clone()
}

fn generate(kid: String) -> Key {
    let mut rng = getrandom::SysRng;
    #[allow(clippy::expect_used)] // a test double: no key, no test
    let private = rsa::PrivateKey::new(&mut rng, KEY_BITS).expect("generating a test RSA key");
    #[allow(clippy::expect_used)]
    let der = private.to_pkcs1_der().expect("encoding the test RSA key");
    let encoding = EncodingKey::from_rsa_der(der.as_bytes());
    let trim = |bytes: Box<[u8]>| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        URL_SAFE_NO_PAD.encode(&bytes[start..])
    };
    let jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": trim(private.n().to_be_bytes()),
        "e": trim(private.e().to_be_bytes()),
    });
    Key { kid, encoding, jwk }
}

struct State {
    /// Keys the JWKS document publishes.
    published: Vec<Key>,
    /// The key tokens are signed with.
    signing: Key,
    next_key: usize,
    jwks_requests: usize,
    metadata_requests: usize,
}

/// A fake authority on 127.0.0.1 for one tenant:
///
/// - `GET /{tenant}/v2.0/.well-known/openid-configuration` → `{"issuer", "jwks_uri", ...}`;
/// - `GET /{tenant}/discovery/v2.0/keys` → the published keys.
///
/// [`mint`](Self::mint) signs claims with the current key; [`claims`](Self::claims) gives a
/// good token's claims to start from; [`rotate`](Self::rotate) publishes a new key and signs
/// with it from then on.
pub struct OidcFake {
    server: MockServer,
    tenant: String,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for OidcFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcFake")
            .field("authority", &self.authority())
            .finish_non_exhaustive()
    }
}

struct Metadata {
    issuer: String,
    jwks_uri: String,
    state: Arc<Mutex<State>>,
}

impl Respond for Metadata {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        lock(&self.state).metadata_requests += 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint": format!("{}/oauth2/v2.0/token", self.issuer),
        }))
    }
}

struct Jwks(Arc<Mutex<State>>);

impl Respond for Jwks {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut s = lock(&self.0);
        s.jwks_requests += 1;
        let keys: Vec<Value> = s.published.iter().map(|k| k.jwk.clone()).collect();
        ResponseTemplate::new(200).set_body_json(json!({ "keys": keys }))
    }
}

impl OidcFake {
    /// Starts the fake for `tenant` with one published key.
    pub async fn start(tenant: impl Into<String>) -> Self {
        let tenant = tenant.into();
        let server = MockServer::start().await;
        let first = pooled_key(0);
        let state = Arc::new(Mutex::new(State {
            published: vec![first.clone()],
            signing: first,
            next_key: 1,
            jwks_requests: 0,
            metadata_requests: 0,
        }));
        let authority = format!("{}/{tenant}/v2.0", server.uri());
        Mock::given(method("GET"))
            .and(path(format!(
                "/{tenant}/v2.0/.well-known/openid-configuration"
            )))
            .respond_with(Metadata {
                issuer: authority.clone(),
                jwks_uri: format!("{}/{tenant}/discovery/v2.0/keys", server.uri()),
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/{tenant}/discovery/v2.0/keys")))
            .respond_with(Jwks(state.clone()))
            .mount(&server)
            .await;
        Self {
            server,
            tenant,
            state,
        }
    }

    /// The authority URL (also the issuer): `http://127.0.0.1:PORT/{tenant}/v2.0`.
    pub fn authority(&self) -> String {
        format!("{}/{}/v2.0", self.server.uri(), self.tenant)
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The claims of a good token for user `oid`: this issuer and tenant, audience `audience`,
    /// role `role`, valid from a minute ago for an hour.
    pub fn claims(&self, audience: &str, oid: &str, role: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.authority(),
            "aud": audience,
            "tid": self.tenant,
            "oid": oid,
            "roles": [role],
            "ver": "2.0",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
        })
    }

    /// `claims` signed RS256 with the current key (its `kid` in the header).
    pub fn mint(&self, claims: &Value) -> String {
        let key = lock(&self.state).signing.clone();
        sign(&key, &key.kid, claims)
    }

    /// `claims` signed with the current key but naming `kid` in the header.
    pub fn mint_with_kid(&self, kid: &str, claims: &Value) -> String {
        let key = lock(&self.state).signing.clone();
        sign(&key, kid, claims)
    }

    /// Rotates the keys: a new key is published (the old one stays published too) and signs
    /// every token from now on. Returns its id.
    pub fn rotate(&self) -> String {
        let mut s = lock(&self.state);
        let key = pooled_key(s.next_key);
        s.next_key += 1;
        s.published.push(key.clone());
        s.signing = key.clone();
        key.kid
    }

    /// How many times the JWKS document was fetched.
    pub fn jwks_requests(&self) -> usize {
        lock(&self.state).jwks_requests
    }

    /// How many times the metadata was fetched.
    pub fn metadata_requests(&self) -> usize {
        lock(&self.state).metadata_requests
    }
}

fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    #[allow(clippy::expect_used)] // a test double: RS256 over JSON claims does not fail
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("signing a test token")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
