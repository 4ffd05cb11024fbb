//! Registry authorization: the Docker token flow. A client challenged with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` asks the realm (on
//! the API server) for a token with HTTP Basic credentials (a password, or
//! an API token as the password) and gets a short-lived HS256 JWT holding
//! only the actions its project roles allow. API bearer tokens are also
//! accepted directly. Nothing on this path hashes a password except the
//! token endpoint itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use podspace_api::auth::{Authenticator, Authorizer, Principal, Verb};
use serde::{Deserialize, Serialize};

use crate::error::{Code, RegistryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    fn parse(s: &str) -> Vec<Action> {
        match s {
            "pull" => vec![Action::Pull],
            "push" => vec![Action::Push],
            "delete" => vec![Action::Delete],
            "*" => vec![Action::Pull, Action::Push, Action::Delete],
            _ => vec![],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn verb(self) -> Verb {
        match self {
            Action::Pull => Verb::Get,
            Action::Push => Verb::Update,
            Action::Delete => Verb::Delete,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: Vec<AccessEntry>,
}

/// What a request may do.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A registry token: exactly the actions it lists.
    Token {
        subject: String,
        access: BTreeMap<String, BTreeSet<Action>>,
        catalog: bool,
    },
    /// An API token: whatever the principal's roles allow right now.
    Principal(Principal),
}

impl Caller {
    pub fn subject(&self) -> Principal {
        match self {
            Caller::Token { subject, .. } => Principal::user(subject),
            Caller::Principal(p) => p.clone(),
        }
    }

    pub async fn may(&self, authz: &Authorizer, repo: &str, action: Action) -> Result<bool> {
        match self {
            Caller::Token { access, .. } => {
                Ok(access.get(repo).is_some_and(|a| a.contains(&action)))
            }
            Caller::Principal(p) => allowed(authz, p, repo, action).await,
        }
    }

    pub fn may_list_catalog(&self) -> bool {
        match self {
            Caller::Token { catalog, .. } => *catalog,
            Caller::Principal(_) => true,
        }
    }
}

pub async fn allowed(
    authz: &Authorizer,
    p: &Principal,
    repo: &str,
    action: Action,
) -> Result<bool> {
    let Some((ns, _)) = repo.split_once('/') else {
        return Ok(false);
    };
    Ok(authz
        .allowed(p, action.verb(), "imagestreams/layers", Some(ns))
        .await?)
}

/// A requested scope: `repository:<name>:<actions>` or `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository(String, BTreeSet<Action>),
    Catalog,
}

pub fn parse_scope(s: &str) -> Option<Scope> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    match kind {
        "repository" => Some(Scope::Repository(
            name.to_string(),
            actions.split(',').flat_map(Action::parse).collect(),
        )),
        "registry" if name == "catalog" => Some(Scope::Catalog),
        _ => None,
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub service: String,
    pub realm: String,
    ttl: Duration,
    /// Tokens already verified, until they expire: a client sends the same
    /// token with every request of a push or pull.
    verified: std::sync::RwLock<std::collections::HashMap<String, (Caller, i64)>>,
}

const VERIFIED_MAX: usize = 10_000;

const ISSUER: &str = "podspace";

impl TokenService {
    pub fn new(key: &[u8], service: &str, realm: &str, ttl: Duration) -> Self {
        TokenService {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            service: service.to_string(),
            realm: realm.to_string(),
            ttl,
            verified: Default::default(),
        }
    }

    /// The challenge for a refused request.
    pub fn challenge(&self, scope: Option<&str>, insufficient: bool) -> String {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm, self.service
        );
        if let Some(scope) = scope {
            c.push_str(&format!(",scope=\"{scope}\""));
        }
        if insufficient {
            c.push_str(",error=\"insufficient_scope\"");
        }
        c
    }

    /// Issues a token for `p` holding the requested scopes it is allowed.
    pub async fn issue(
        &self,
        authz: &Authorizer,
        p: &Principal,
        scopes: &[Scope],
    ) -> Result<(String, u64)> {
        let mut access = Vec::new();
        for scope in scopes {
            match scope {
                Scope::Repository(name, actions) => {
                    let mut granted = Vec::new();
                    for a in actions {
                        if allowed(authz, p, name, *a).await? {
                            granted.push(a.as_str().to_string());
                        }
                    }
                    access.push(AccessEntry {
                        kind: "repository".into(),
                        name: name.clone(),
                        actions: granted,
                    });
                }
                Scope::Catalog => access.push(AccessEntry {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: p.name.clone(),
            aud: self.service.clone(),
            exp: now + self.ttl.as_secs() as i64,
            nbf: now - 5,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(RegistryError::internal)?;
        Ok((token, self.ttl.as_secs()))
    }

    fn verify(&self, token: &str) -> Option<Caller> {
        let now = chrono::Utc::now().timestamp();
        if let Ok(cache) = self.verified.read() {
            if let Some((caller, exp)) = cache.get(token) {
                if *exp > now {
                    return Some(caller.clone());
                }
            }
        }
        let (caller, exp) = self.decode(token)?;
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= VERIFIED_MAX {
                cache.retain(|_, (_, e)| *e > now);
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
            }
            cache.insert(token.to_string(), (caller.clone(), exp));
        }
        Some(caller)
    }

    fn decode(&self, token: &str) -> Option<(Caller, i64)> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[&self.service]);
        v.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()?
            .claims;
        let mut access: BTreeMap<String, BTreeSet<Action>> = BTreeMap::new();
        let mut catalog = false;
        for e in claims.access {
            match e.kind.as_str() {
                "repository" => access
                    .entry(e.name)
                    .or_default()
                    .extend(e.actions.iter().flat_map(|a| Action::parse(a))),
                "registry" if e.name == "catalog" => catalog = true,
                _ => {}
            }
        }
        Some((
            Caller::Token {
                subject: claims.sub,
                access,
                catalog,
            },
            claims.exp,
        ))
    }

    /// Who is calling the registry: `None` for anonymous requests; an
    /// invalid credential is an error.
    pub async fn caller(
        &self,
        authn: &Authenticator,
        headers: &HeaderMap,
    ) -> Result<Option<Caller>> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let refused = || {
            let mut e = RegistryError::new(Code::Unauthorized, "authentication required");
            e.challenge = Some(self.challenge(None, false));
            e
        };
        let (scheme, cred) = value.split_once(' ').ok_or_else(refused)?;
        let cred = cred.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if cred.starts_with(podspace_api::auth::authn::TOKEN_PREFIX) {
                let p = authn
                    .authenticate(cred)
                    .await
                    .map_err(RegistryError::internal)?
                    .ok_or_else(refused)?;
                return Ok(Some(Caller::Principal(p)));
            }
            return self.verify(cred).map(Some).ok_or_else(refused);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            // Only an API token as the password: hashing a password on every
            // registry request would make every request slow. A password
            // gets the challenge, with the scope, so the client fetches a
            // token with it instead.
            let (_, secret) = basic(cred).ok_or_else(refused)?;
            if secret.starts_with(podspace_api::auth::authn::TOKEN_PREFIX) {
                let p = authn
                    .authenticate(&secret)
                    .await
                    .map_err(RegistryError::internal)?
                    .ok_or_else(refused)?;
                return Ok(Some(Caller::Principal(p)));
            }
            return Ok(None);
        }
        Err(refused())
    }
}

/// `GET /v2/token?service=…&scope=…` on the API server: HTTP Basic
/// credentials (a password, or an API token as the password) for a registry
/// token. Anonymous requests get nothing.
pub async fn endpoint(
    tokens: &TokenService,
    authn: &Authenticator,
    authz: &Authorizer,
    headers: &HeaderMap,
    query: &[(String, String)],
    client: Option<std::net::IpAddr>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let refused = |msg: &str| {
        let mut e = RegistryError::new(Code::Unauthorized, msg);
        e.challenge = Some(format!("Basic realm=\"{}\"", tokens.service));
        e.into_response()
    };
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, c)| basic(c.trim()));
    let Some((user, secret)) = creds else {
        return refused("authentication required");
    };
    let principal = if secret.starts_with(podspace_api::auth::authn::TOKEN_PREFIX) {
        match authn.authenticate(&secret).await {
            Ok(Some(p)) => p,
            Ok(None) => return refused("invalid token"),
            Err(e) => return RegistryError::internal(e).into_response(),
        }
    } else {
        match authn.check_password(&user, &secret, client).await {
            Ok(true) => Principal::user(&user),
            Ok(false) => return refused("invalid username or password"),
            Err(podspace_api::auth::AuthError::Throttled(wait)) => {
                let mut resp = RegistryError::too_many(format!(
                    "too many failed logins: try again in {} s",
                    wait.as_secs().max(1)
                ))
                .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return resp;
            }
            Err(e) => return RegistryError::internal(e).into_response(),
        }
    };
    if let Some(service) = query.iter().find(|(k, _)| k == "service").map(|(_, v)| v) {
        if service != &tokens.service {
            return RegistryError::new(Code::Denied, format!("unknown service {service:?}"))
                .into_response();
        }
    }
    let scopes: Vec<Scope> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter_map(parse_scope)
        .collect();
    match tokens.issue(authz, &principal, &scopes).await {
        Ok((token, expires_in)) => axum::Json(serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

pub fn basic(encoded: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scope("repository:shop/web:pull,push"),
            Some(Scope::Repository(
                "shop/web".into(),
                [Action::Pull, Action::Push].into()
            ))
        );
        assert_eq!(parse_scope("registry:catalog:*"), Some(Scope::Catalog));
        assert_eq!(
            parse_scope("repository:shop/web:*"),
            Some(Scope::Repository(
                "shop/web".into(),
                [Action::Pull, Action::Push, Action::Delete].into()
            ))
        );
        assert_eq!(parse_scope("nonsense"), None);
    }
}
