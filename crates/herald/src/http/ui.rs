//! The built-in web UI (SPEC §12): `GET /` is the dashboard page and `GET /ui/herald.js` the ES
//! module of Lit web components that the page, and any portal, imports.
//!
//! # Where the files come from
//! `web/` (npm: Lit, bundled by esbuild) builds them into `web/dist/`, which is committed; this
//! module compiles them into the binary with `include_bytes!`. So running Herald needs no npm
//! and the browser fetches nothing from anywhere but this server. After a change under
//! `web/src`, `npm run build` in `web/` rewrites `web/dist/`, and the next cargo build picks it
//! up (cargo tracks included files). CI rebuilds `web/dist/` and fails if it differs from the
//! committed one. `web/README.md` tells the whole path.
//!
//! # Caching
//! The URLs carry no content hash, so every answer says `Cache-Control: no-cache` with a strong
//! `ETag` (a hash of the bytes, computed on first use): a browser revalidates on each load and
//! gets `304 Not Modified`, with no body, until the binary serves different files.
//!
//! # Access
//! These routes need no token (SPEC §6): they are the same for everyone and carry no data. The
//! components send the token a person gives them with their own requests to `/events`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The dashboard page's policy: its own scripts only, connections to this origin only. Styles
/// may be inline (the page's `<style>`, and Lit's fallback where constructable style sheets are
/// missing); the favicon is a `data:` image.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// A file compiled into the binary.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// `"<64-bit FNV-1a of bytes, hex>"`, computed on first use.
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(bytes: &'static [u8], content_type: &'static str) -> Self {
        Self { bytes, content_type, etag: OnceLock::new() }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            // FNV-1a: enough to tell two builds apart, and no dependency for it.
            let hash = self
                .bytes
                .iter()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            HeaderValue::from_str(&format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
        })
    }

    /// The file, or `304 Not Modified` when the request's `If-None-Match` names this version.
    fn serve(&'static self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = request.get_all(header::IF_NONE_MATCH).iter().any(|v| matches_etag(v, etag));
        let mut response =
            if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Response::new(Body::from(self.bytes)) };
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::ETAG, etag.clone());
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

/// Does an `If-None-Match` value (`*`, or a list of possibly weak tags) name `etag`?
fn matches_etag(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else { return false };
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes())
}

static DASHBOARD: Asset = Asset::new(include_bytes!("../../../../web/dist/index.html"), "text/html; charset=utf-8");
static MODULE: Asset = Asset::new(include_bytes!("../../../../web/dist/herald.js"), "text/javascript; charset=utf-8");

/// `GET /`: the dashboard page.
pub async fn dashboard(headers: HeaderMap) -> Response {
    let mut response = DASHBOARD.serve(&headers);
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DASHBOARD_CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /ui/{*path}`: the components' module, `herald.js`.
///
/// # Errors
/// 404 (JSON, like every error) for any other path.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    match path.as_str() {
        "herald.js" => Ok(MODULE.serve(&headers)),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no UI file /ui/{path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_embedded_and_tagged() {
        assert!(MODULE.bytes.starts_with(b"// Herald web components"));
        assert!(std::str::from_utf8(DASHBOARD.bytes).unwrap().contains(r#"src="ui/herald.js""#));
        let tag = MODULE.etag().to_str().unwrap();
        assert_eq!(tag.len(), 18, "{tag}");
        assert_ne!(MODULE.etag(), DASHBOARD.etag());
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let etag = HeaderValue::from_static("\"abc\"");
        let hit = |v: &'static str| matches_etag(&HeaderValue::from_static(v), &etag);
        assert!(hit("\"abc\""));
        assert!(hit("W/\"abc\""));
        assert!(hit("\"x\", \"abc\""));
        assert!(hit("*"));
        assert!(!hit("\"abd\""));
        assert!(!hit("abc"));
    }

    #[tokio::test]
    async fn answers_carry_types_caching_and_policy_and_revalidate_to_304() {
        let page = dashboard(HeaderMap::new()).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("connect-src 'self'"));

        let module = asset(Path("herald.js".into()), HeaderMap::new()).await.unwrap();
        assert_eq!(module.status(), StatusCode::OK);
        assert_eq!(module.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        let etag = module.headers()[header::ETAG].clone();

        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        let cached = asset(Path("herald.js".into()), again).await.unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(cached.headers()[header::ETAG], etag);

        let missing = asset(Path("nope.js".into()), HeaderMap::new()).await.unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}
