//! Authentication and authorisation (SPEC §6): JWTs, their claims, and what they allow.
//!
//! With neither `auth.jwt_secret` nor `auth.jwt_public_key` configured, Herald is *open*: every
//! request is an anonymous principal allowed everything. Otherwise every request to a protected
//! endpoint carries a JWT, taken from the first of
//! 1. `Authorization: Bearer <jwt>`,
//! 2. the cookie `herald_token`,
//! 3. the query parameter `access_token` (`EventSource` cannot set headers),
//!
//! and a request without a valid one is 401. A token is valid when its signature verifies with
//! the configured key under the one algorithm family that key implies (HS256 for a secret,
//! RS256 for an RSA key, ES256 / ES384 for an EC key, so `alg: none` and algorithm confusion are
//! refused), its `exp` has not passed and its `nbf` has (both within `auth.leeway_s`), and its
//! claims parse. `exp` is optional; a token without it does not expire.
//!
//! `exp`, `nbf` and `iat` are NumericDates (RFC 7519 §2): seconds since the epoch, which may
//! have a fraction (`1893456000.5`). A fraction is accepted and rounded towards a shorter life,
//! `exp` down and `nbf` up: less than a second, and never in the token's favour.
//! Herald checks `exp` and `nbf` itself on the values it read (jsonwebtoken's own checks are
//! off), so what is checked is exactly what [`Access::expires`] ends a stream by.
//!
//! # Claims
//! - `sub`: the principal, shown in `/subscriptions` and used for per-principal limits.
//! - `role`: `viewer` (subscribe to every topic), `publisher` (viewer, and publish to every
//!   topic) or `admin` (everything, including `/subscriptions`).
//! - `herald`: `{"subscribe": [patterns], "publish": [patterns]}`, adding topics to what the
//!   role allows.
//!
//! # Invariants
//! - An [`Access`] only exists for a request that passed authentication; handlers of protected
//!   endpoints take one as an extractor, and the open ones (`/health`, `/ready`, `/metrics`,
//!   the static UI) do not.
//! - Nothing here logs or returns the token's text: rejection details name what was wrong,
//!   never the token.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::http::ApiError;
use crate::server::Hub;
use crate::topic::{Pattern, Topic};

/// The cookie a browser may carry its token in.
pub const COOKIE: &str = "herald_token";
/// The query parameter a token may be passed in.
pub const QUERY_PARAM: &str = "access_token";
/// The principal of requests without a `sub` (and of every request in open mode).
pub const ANONYMOUS: &str = "anonymous";

/// A role, the coarse part of what a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Subscribe to every topic.
    Viewer,
    /// Subscribe to and publish on every topic.
    Publisher,
    /// Everything, including `/subscriptions`.
    Admin,
}

/// Per-topic grants: the fine part of what a token allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicClaims {
    /// Patterns whose topics the bearer may receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// Patterns whose topics the bearer may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
}

/// The claims Herald reads from a token; others (`iss`, `aud`, `jti`, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, in seconds since the Unix epoch (a fraction in a token is rounded down).
    #[serde(default, deserialize_with = "numeric_date::down", skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, in seconds since the Unix epoch (a fraction in a token is rounded up).
    #[serde(default, deserialize_with = "numeric_date::up", skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, in seconds since the Unix epoch (a fraction in a token is rounded down).
    #[serde(default, deserialize_with = "numeric_date::down", skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Per-topic grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub herald: Option<TopicClaims>,
}

/// RFC 7519 NumericDates read as whole seconds: integers as they are, fractions rounded the way
/// the field asks (see the module docs); negative, non-finite or out-of-range values, and
/// anything but a number (or `null`, read as absent), are malformed.
mod numeric_date {
    use serde::de::{self, Deserializer, Visitor};

    /// Fractions rounded down (`exp`, `iat`).
    pub(super) fn down<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_option(Seconds { up: false })
    }

    /// Fractions rounded up (`nbf`).
    pub(super) fn up<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_option(Seconds { up: true })
    }

    struct Seconds {
        up: bool,
    }

    impl<'de> Visitor<'de> for Seconds {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a NumericDate: seconds since the Unix epoch, at least 0")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            let whole = if self.up { v.ceil() } else { v.floor() };
            // `u64::MAX as f64` is 2^64, the first value that does not fit.
            if !(0.0..u64::MAX as f64).contains(&whole) {
                return Err(E::invalid_value(de::Unexpected::Float(v), &self));
            }
            Ok(Some(whole as u64))
        }
    }
}

/// Signs `claims` as an HS256 JWT with `secret` (what `herald token` prints).
///
/// # Errors
/// [`Error::Sign`] when the claims cannot be encoded.
///
/// # Examples
/// ```
/// use herald::auth::{mint_hs256, Claims, Role};
/// let token = mint_hs256(b"s3cret", &Claims { role: Some(Role::Viewer), ..Claims::default() }).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
        .map_err(|e| Error::Sign(e.to_string()))
}

/// Why authentication could not be set up, or a token not minted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `auth.jwt_public_key` names a file that cannot be read.
    #[error("cannot read auth.jwt_public_key {path}: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `auth.jwt_public_key` is not a usable public key.
    #[error("auth.jwt_public_key: {0}")]
    BadKey(String),
    /// A token could not be signed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// What a token allows on one axis (subscribe or publish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every topic.
    All,
    /// The topics these patterns match (none when empty).
    Only(Arc<[Pattern]>),
}

impl Grant {
    fn from_parts(all: bool, patterns: &[String], what: &str) -> Result<Self, String> {
        if all {
            return Ok(Self::All);
        }
        let patterns = patterns
            .iter()
            .map(|p| Pattern::new(p).map_err(|e| format!("herald.{what} pattern {p:?} {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.iter().any(|p| p.as_str() == "**") {
            return Ok(Self::All);
        }
        Ok(Self::Only(patterns.into()))
    }

    /// Whether events on `topic` are allowed.
    pub fn allows(&self, topic: &Topic) -> bool {
        match self {
            Self::All => true,
            Self::Only(patterns) => patterns.iter().any(|p| p.matches(topic)),
        }
    }
}

/// Who made a request and what they may do: the outcome of authentication.
#[derive(Debug, Clone)]
pub struct Access {
    /// The token's `sub`, or [`ANONYMOUS`].
    pub principal: Arc<str>,
    /// What per-principal limits count by: `sub:<sub>` with a `sub`, otherwise `ip:<address>`
    /// of the client (so anonymous clients are limited one address at a time).
    pub limit_key: Arc<str>,
    /// Topics the principal may receive.
    pub subscribe: Grant,
    /// Topics the principal may publish to.
    pub publish: Grant,
    /// May list `/subscriptions`.
    pub admin: bool,
    /// When the token stops being valid (`exp` plus the leeway); `None`: never.
    pub expires: Option<SystemTime>,
}

/// What a subscription may receive, decided once when it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Everything its patterns match: the claims cover them all.
    None,
    /// Only events whose topic one of these (claims') patterns also matches.
    Only(Arc<[Pattern]>),
}

impl Filter {
    /// Whether an event on `topic`, which the subscription's patterns match, may be sent.
    pub fn allows(&self, topic: &Topic) -> bool {
        match self {
            Self::None => true,
            Self::Only(patterns) => patterns.iter().any(|p| p.matches(topic)),
        }
    }

    /// The allow-list for [`Router::subscribe`](crate::hub::Router::subscribe).
    pub fn allow_list(&self) -> Option<Arc<[Pattern]>> {
        match self {
            Self::None => None,
            Self::Only(patterns) => Some(patterns.clone()),
        }
    }
}

impl Access {
    /// Open mode: everything allowed; limited by the client's address.
    pub fn open(remote: Option<SocketAddr>) -> Self {
        Self {
            principal: ANONYMOUS.into(),
            limit_key: ip_key(remote),
            subscribe: Grant::All,
            publish: Grant::All,
            admin: true,
            expires: None,
        }
    }

    /// What verified `claims` allow.
    ///
    /// # Errors
    /// A description of the claim that does not parse (a bad pattern).
    pub fn from_claims(claims: &Claims, leeway: Duration, remote: Option<SocketAddr>) -> Result<Self, String> {
        let role = claims.role;
        let topics = claims.herald.clone().unwrap_or_default();
        let subscribe = Grant::from_parts(role.is_some(), &topics.subscribe, "subscribe")?;
        let publish =
            Grant::from_parts(matches!(role, Some(Role::Publisher | Role::Admin)), &topics.publish, "publish")?;
        let (principal, limit_key) = match claims.sub.as_deref() {
            Some(sub) if !sub.is_empty() => (Arc::from(sub), Arc::from(format!("sub:{sub}"))),
            _ => (Arc::from(ANONYMOUS), ip_key(remote)),
        };
        // A far-future `exp` that does not fit a SystemTime simply never expires.
        let expires = claims.exp.and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp))?.checked_add(leeway));
        Ok(Self { principal, limit_key, subscribe, publish, admin: role == Some(Role::Admin), expires })
    }

    /// What a subscription to `patterns` may receive.
    ///
    /// # Errors
    /// 403 when no topic that any of the patterns matches is one the principal may receive.
    pub fn subscription_filter(&self, patterns: &[Pattern]) -> Result<Filter, ApiError> {
        let Grant::Only(allowed) = &self.subscribe else { return Ok(Filter::None) };
        if patterns.iter().all(|p| allowed.iter().any(|a| a.covers(p))) {
            return Ok(Filter::None);
        }
        // Only the claims' patterns that can meet the subscription need checking per event.
        let relevant: Vec<Pattern> =
            allowed.iter().filter(|a| patterns.iter().any(|p| a.intersects(p))).cloned().collect();
        if relevant.is_empty() {
            return Err(ApiError::forbidden("the token allows none of the topics these patterns match"));
        }
        Ok(Filter::Only(relevant.into()))
    }

    /// Whether the principal may publish to `topic`.
    pub fn may_publish(&self, topic: &Topic) -> bool {
        self.publish.allows(topic)
    }
}

fn ip_key(remote: Option<SocketAddr>) -> Arc<str> {
    match remote.map(|a| a.ip()) {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}").into(),
            None => format!("ip:{v6}").into(),
        },
        Some(ip) => format!("ip:{ip}").into(),
        None => "ip:unknown".into(),
    }
}

/// The configured verifier: open mode, or one key and the algorithms it implies.
pub struct Auth {
    verifier: Option<(DecodingKey, Validation)>,
    leeway: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms = self.verifier.as_ref().map(|(_, v)| &v.algorithms);
        f.debug_struct("Auth").field("algorithms", &algorithms).finish_non_exhaustive()
    }
}

impl Auth {
    /// Open mode: no key, everything allowed.
    pub fn open() -> Self {
        Self { verifier: None, leeway: Duration::ZERO }
    }

    /// Builds the verifier `config` describes (reading the key file, if one is named).
    ///
    /// # Errors
    /// [`Error`] when the public key cannot be read or is not an RSA or EC public key.
    pub fn new(config: &AuthConfig) -> Result<Self, Error> {
        let (key, algorithms) = match (&config.jwt_secret, &config.jwt_public_key) {
            (Some(secret), _) => (DecodingKey::from_secret(secret.expose().as_bytes()), vec![Algorithm::HS256]),
            (None, Some(source)) => public_key(source)?,
            (None, None) => return Ok(Self::open()),
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // `exp` and `nbf` are checked on the claims as Herald reads them (see the module docs).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        // `exp` is optional (SPEC §6 names none as required); `aud` is not Herald's concern.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        Ok(Self { verifier: Some((key, validation)), leeway: config.leeway_s })
    }

    /// Whether no key is configured (everything is allowed).
    pub fn is_open(&self) -> bool {
        self.verifier.is_none()
    }

    /// Authenticates a request by its headers and raw query string.
    ///
    /// # Errors
    /// 401 when a key is configured and no token, or no valid one, came with the request.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        remote: Option<SocketAddr>,
    ) -> Result<Access, ApiError> {
        let Some((key, validation)) = &self.verifier else { return Ok(Access::open(remote)) };
        let Some(token) = find_token(headers, query) else {
            return Err(ApiError::unauthorized(
                "a token is required: Authorization: Bearer, the herald_token cookie, or ?access_token=",
            ));
        };
        let claims = jsonwebtoken::decode::<Claims>(token.as_bytes(), key, validation)
            .map_err(|e| ApiError::unauthorized(describe(e.kind())))?
            .claims;
        check_times(&claims, self.leeway, SystemTime::now()).map_err(ApiError::unauthorized)?;
        Access::from_claims(&claims, self.leeway, remote).map_err(ApiError::unauthorized)
    }
}

/// Whether `claims` are valid at `now` by their `exp` and `nbf`, each given `leeway`: expired
/// once `exp` + leeway is past, not yet valid while `nbf` − leeway is ahead (whole seconds).
fn check_times(claims: &Claims, leeway: Duration, now: SystemTime) -> Result<(), &'static str> {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let leeway = leeway.as_secs();
    if claims.exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
        return Err("the token has expired");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err("the token is not valid yet (nbf)");
    }
    Ok(())
}

/// Loads a PEM public key (the text itself, or a path to it) and the algorithms its type implies.
fn public_key(source: &str) -> Result<(DecodingKey, Vec<Algorithm>), Error> {
    let pem = if source.trim_start().starts_with("-----BEGIN") {
        source.to_owned()
    } else {
        let path = PathBuf::from(source);
        std::fs::read_to_string(&path).map_err(|source| Error::ReadKey { path, source })?
    };
    if pem.contains("PRIVATE KEY") {
        return Err(Error::BadKey("this is a private key; configure the public key".into()));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((key, vec![Algorithm::RS256]));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
        // The key is the uncompressed curve point: 1 + 2 × 32 bytes on P-256, 1 + 2 × 48 on P-384.
        let algorithm = match key.kind() {
            DecodingKeyKind::SecretOrDer(point) if point.len() == 65 => Algorithm::ES256,
            DecodingKeyKind::SecretOrDer(point) if point.len() == 97 => Algorithm::ES384,
            _ => return Err(Error::BadKey("an EC key must be on P-256 (ES256) or P-384 (ES384)".into())),
        };
        return Ok((key, vec![algorithm]));
    }
    Err(Error::BadKey("not a PEM RSA or EC public key".into()))
}

/// Why a token was refused, for the 401 detail; never the token itself.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token's algorithm is not the one this server's key uses".into()
        }
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        ErrorKind::Json(e) => format!("the token's claims do not parse: {e}"),
        _ => "the token is malformed".into(),
    }
}

/// The request's token: `Authorization: Bearer`, else the cookie, else the query parameter.
fn find_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().find_map(|v| {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    });
    if bearer.is_some() {
        return bearer;
    }
    let cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.trim_matches('"').to_owned())
        })
    });
    if cookie.is_some() {
        return cookie;
    }
    form_urlencoded::parse(query?.as_bytes()).find(|(name, _)| name == QUERY_PARAM).map(|(_, v)| v.into_owned())
}

impl FromRequestParts<Arc<Hub>> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        hub.auth.authenticate(&parts.headers, parts.uri.query(), remote)
    }
}

/// 403 unless `access` may list `/subscriptions`.
///
/// # Errors
/// 403 for a principal that is not an admin.
pub fn require_admin(access: &Access) -> Result<(), ApiError> {
    if access.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("this endpoint needs the admin role"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::StatusCode;

    fn pats(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn topic(s: &str) -> Topic {
        s.parse().unwrap()
    }

    fn access(role: Option<Role>, subscribe: &[&str], publish: &[&str]) -> Access {
        let herald = TopicClaims {
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
        };
        let claims = Claims { sub: Some("u".into()), role, herald: Some(herald), ..Claims::default() };
        Access::from_claims(&claims, Duration::ZERO, None).unwrap()
    }

    #[test]
    fn roles_grant_what_the_spec_says() {
        let viewer = access(Some(Role::Viewer), &[], &[]);
        assert_eq!(
            (viewer.subscribe.clone(), viewer.publish.clone(), viewer.admin),
            (Grant::All, Grant::Only(Arc::from([])), false)
        );
        let publisher = access(Some(Role::Publisher), &[], &[]);
        assert_eq!((publisher.subscribe, publisher.publish, publisher.admin), (Grant::All, Grant::All, false));
        let admin = access(Some(Role::Admin), &[], &[]);
        assert_eq!((admin.subscribe, admin.publish, admin.admin), (Grant::All, Grant::All, true));
        let none = access(None, &[], &[]);
        assert!(!none.subscribe.allows(&topic("a")) && !none.may_publish(&topic("a")) && !none.admin);
    }

    #[test]
    fn topic_claims_add_to_the_role() {
        let a = access(Some(Role::Viewer), &[], &["items/*"]);
        assert_eq!(a.subscribe, Grant::All);
        assert!(a.may_publish(&topic("items/1")));
        assert!(!a.may_publish(&topic("items/1/x")));
        assert!(!a.may_publish(&topic("other")));
        let b = access(None, &["items/**", "news"], &[]);
        assert!(b.subscribe.allows(&topic("items/1/x")) && b.subscribe.allows(&topic("news")));
        assert!(!b.subscribe.allows(&topic("items")) && !b.subscribe.allows(&topic("news/x")));
        assert_eq!(access(None, &["**"], &["**"]).publish, Grant::All);
    }

    #[test]
    fn subscriptions_are_refused_filtered_or_passed() {
        let a = access(None, &["items/*", "news/**"], &[]);
        // Covered entirely: no per-event check.
        assert_eq!(a.subscription_filter(&pats(&["items/1", "news/a/b", "items/*"])).unwrap(), Filter::None);
        // Overlapping: filtered by the claims' patterns that can meet it.
        let f = a.subscription_filter(&pats(&["**"])).unwrap();
        assert_eq!(f, Filter::Only(pats(&["items/*", "news/**"]).into()));
        let f = a.subscription_filter(&pats(&["items/**"])).unwrap();
        assert_eq!(f, Filter::Only(pats(&["items/*"]).into()));
        assert!(f.allows(&topic("items/1")) && !f.allows(&topic("items/1/2")));
        // Nothing in common: 403.
        let e = a.subscription_filter(&pats(&["other/**", "items"])).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        // Role viewer: everything, no filter.
        assert_eq!(access(Some(Role::Viewer), &[], &[]).subscription_filter(&pats(&["**"])).unwrap(), Filter::None);
    }

    #[test]
    fn bad_patterns_in_claims_are_refused() {
        let claims = Claims {
            herald: Some(TopicClaims { subscribe: vec!["a/**/b".into()], publish: vec![] }),
            ..Claims::default()
        };
        assert!(Access::from_claims(&claims, Duration::ZERO, None).unwrap_err().contains("a/**/b"));
    }

    #[test]
    fn principals_and_limit_keys() {
        let remote: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let with_sub = Claims { sub: Some("alice".into()), ..Claims::default() };
        let a = Access::from_claims(&with_sub, Duration::ZERO, Some(remote)).unwrap();
        assert_eq!((&*a.principal, &*a.limit_key), ("alice", "sub:alice"));
        let b = Access::from_claims(&Claims::default(), Duration::ZERO, Some(remote)).unwrap();
        assert_eq!((&*b.principal, &*b.limit_key), (ANONYMOUS, "ip:10.1.2.3"));
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:1".parse().unwrap();
        assert_eq!(&*Access::open(Some(mapped)).limit_key, "ip:10.1.2.3");
    }

    #[test]
    fn expiry_includes_leeway_and_never_overflows() {
        let claims = Claims { exp: Some(100), ..Claims::default() };
        let a = Access::from_claims(&claims, Duration::from_secs(5), None).unwrap();
        assert_eq!(a.expires, Some(UNIX_EPOCH + Duration::from_secs(105)));
        let far = Claims { exp: Some(u64::MAX), ..Claims::default() };
        assert_eq!(Access::from_claims(&far, Duration::from_secs(5), None).unwrap().expires, None);
    }

    #[test]
    fn tokens_are_found_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(find_token(&h, Some("access_token=q&topic=a")), Some("q".into()));
        h.insert(header::COOKIE, "a=b; herald_token=c; d=e".parse().unwrap());
        assert_eq!(find_token(&h, Some("access_token=q")), Some("c".into()));
        h.insert(header::AUTHORIZATION, "Bearer  h ".parse().unwrap());
        assert_eq!(find_token(&h, Some("access_token=q")), Some("h".into()));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(find_token(&h, None), Some("c".into()), "a non-bearer scheme is not a token");
        assert_eq!(find_token(&HeaderMap::new(), None), None);
    }

    #[test]
    fn hs256_round_trip_and_rejections() {
        let config =
            AuthConfig { jwt_secret: Some(Secret::new("s")), leeway_s: Duration::ZERO, ..AuthConfig::default() };
        let auth = Auth::new(&config).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let bearer = |token: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
            h
        };
        let good = mint_hs256(
            b"s",
            &Claims { sub: Some("x".into()), exp: Some(now + 60), role: Some(Role::Admin), ..Claims::default() },
        )
        .unwrap();
        assert!(auth.authenticate(&bearer(&good), None, None).unwrap().admin);
        let refused = |token: String| auth.authenticate(&bearer(&token), None, None).unwrap_err();
        let expired = refused(mint_hs256(b"s", &Claims { exp: Some(now - 10), ..Claims::default() }).unwrap());
        assert_eq!((expired.status, expired.detail.as_str()), (StatusCode::UNAUTHORIZED, "the token has expired"));
        let early = refused(mint_hs256(b"s", &Claims { nbf: Some(now + 60), ..Claims::default() }).unwrap());
        assert!(early.detail.contains("nbf"));
        let forged = refused(mint_hs256(b"not s", &Claims::default()).unwrap());
        assert!(forged.detail.contains("signature"));
        assert!(!forged.detail.contains(&good));
        assert_eq!(auth.authenticate(&HeaderMap::new(), None, None).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn public_keys_must_be_public_and_known() {
        let bad = |text: &str| {
            Auth::new(&AuthConfig { jwt_public_key: Some(text.into()), ..AuthConfig::default() })
                .unwrap_err()
                .to_string()
        };
        assert!(bad("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").contains("private"));
        assert!(bad("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").contains("not a PEM"));
        assert!(bad("/nonexistent/key.pem").contains("/nonexistent/key.pem"));
    }

    #[test]
    fn numeric_dates_may_have_fractions() {
        let claims: Claims =
            serde_json::from_str(r#"{"exp": 1893456000.5, "nbf": 1700000000.25, "iat": 1700000000.75}"#).unwrap();
        assert_eq!(
            (claims.exp, claims.nbf, claims.iat),
            (Some(1_893_456_000), Some(1_700_000_001), Some(1_700_000_000))
        );
        let claims: Claims = serde_json::from_str(r#"{"exp": 1893456000, "nbf": null}"#).unwrap();
        assert_eq!((claims.exp, claims.nbf, claims.iat), (Some(1_893_456_000), None, None));
        for bad in
            [r#"{"exp": -1}"#, r#"{"exp": -0.5}"#, r#"{"nbf": 1e30}"#, r#"{"exp": "1893456000"}"#, r#"{"iat": true}"#]
        {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_checked_with_the_leeway() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let at = |exp: Option<u64>, nbf: Option<u64>, leeway: u64| {
            check_times(&Claims { exp, nbf, ..Claims::default() }, Duration::from_secs(leeway), now)
        };
        assert_eq!(at(None, None, 0), Ok(()));
        assert_eq!(at(Some(1000), None, 0), Ok(()));
        assert_eq!(at(Some(999), None, 0), Err("the token has expired"));
        assert_eq!(at(Some(995), None, 5), Ok(()));
        assert_eq!(at(Some(994), None, 5), Err("the token has expired"));
        assert_eq!(at(Some(u64::MAX), None, 5), Ok(()), "no overflow");
        assert_eq!(at(None, Some(1000), 0), Ok(()));
        assert_eq!(at(None, Some(1001), 0), Err("the token is not valid yet (nbf)"));
        assert_eq!(at(None, Some(1005), 5), Ok(()));
        assert_eq!(at(None, Some(1006), 5), Err("the token is not valid yet (nbf)"));
    }

    #[test]
    fn fractional_times_in_tokens_are_accepted_and_still_checked() {
        let config =
            AuthConfig { jwt_secret: Some(Secret::new("s")), leeway_s: Duration::ZERO, ..AuthConfig::default() };
        let auth = Auth::new(&config).unwrap();
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let sign = |claims: serde_json::Value| {
            let token =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s")).unwrap();
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
            auth.authenticate(&h, None, None)
        };
        let ok = sign(serde_json::json!({"role": "viewer", "exp": now + 60.5, "nbf": now - 10.5, "iat": now - 0.5}));
        let expires = ok.unwrap().expires.unwrap();
        assert_eq!(expires, UNIX_EPOCH + Duration::from_secs((now + 60.5).floor() as u64));
        let expired = sign(serde_json::json!({"role": "viewer", "exp": now - 10.5})).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_str()), (StatusCode::UNAUTHORIZED, "the token has expired"));
        let early = sign(serde_json::json!({"role": "viewer", "nbf": now + 60.5})).unwrap_err();
        assert_eq!(
            (early.status, early.detail.as_str()),
            (StatusCode::UNAUTHORIZED, "the token is not valid yet (nbf)")
        );
        let negative = sign(serde_json::json!({"role": "viewer", "exp": -5})).unwrap_err();
        assert_eq!(negative.status, StatusCode::UNAUTHORIZED);
    }
}
