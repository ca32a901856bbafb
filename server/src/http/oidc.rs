//! OpenID Connect sign-in over HTTP: `GET /auth/oidc/{provider}/start` sends the browser to the
//! provider, `GET /auth/oidc/{provider}/callback` takes it back.
//!
//! `start` takes `redirect_to` (where the browser ends: a path of this server, or a URL of its
//! own origin, of PUBLIC_URL's or of CORS_ORIGINS), `mode` (`cookie`, the default: the browser
//! ends signed in with the session cookies of cookie-mode login; `code`: `redirect_to` gets
//! `?oidc_code=` a one-time code, which the app exchanges with the `exchangeOidcCode` mutation)
//! and `link=1` (link the provider to the signed-in caller: with the session cookies, the
//! `csrf` parameter must carry the CSRF cookie's value, so no other site can start it). It
//! stores the flow's `state`, `nonce` and PKCE verifier in Redis for 10 minutes, and binds the
//! flow to the browser with an `HttpOnly` cookie holding the `state`.
//!
//! `callback` takes the flow (once: a replayed `state` finds nothing), checks the browser's
//! flow cookie, exchanges the code with the PKCE verifier, validates the ID token, and signs in,
//! creates or links the account ([`crate::services::identities`]). Nothing is half-done on a
//! failure. When the app named `redirect_to` at the start, a failure sends the browser back
//! there, OAuth style: `?error=` (`invalid_request`, `access_denied`,
//! `temporarily_unavailable` or `server_error`), `error_description` (the message) and
//! `error_code` (the server's code, as `extensions.code`); a callback that cannot find its own
//! flow (a wrong `state`) uses the return URL of the flow its browser's flow cookie names.
//! Otherwise, or when the request asks for JSON (`Accept: application/json`), failures answer
//! JSON `{"error": {"code", "message", "field"?}}` with a 4xx/5xx status.
//!
//! `{provider}` is a server-wide provider's name or a company provider's key
//! `<company id>.<name>` ([`crate::oidc::company`]).

use std::collections::HashMap;
use subtle::ConstantTimeEq as _;

use chrono::Utc;
use cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::{Data, Path},
};
use serde_json::json;

use crate::{
    auth::{self, RequestMeta, Viewer, cookies},
    error::{AppError, AppResult},
    oidc::flow::{self, Flow, LinkTo, Mode, SignedIn},
    ratelimit::Bucket,
    services::{
        auth::{self as auth_service, AuthDeps},
        identities::{self, Completed},
    },
    state::AppState,
};

/// Names of the cookie that binds a flow to the browser that started it.
fn flow_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-oidc_flow"
    } else {
        "oidc_flow"
    }
}

fn flow_cookie(value: &str, secure: bool, max_age: i64) -> String {
    Cookie::build((flow_cookie_name(secure), value.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age))
        .build()
        .encoded()
        .to_string()
}

/// The flow cookie of a request; `None` when absent or sent twice.
fn read_flow_cookie(req: &Request, secure: bool) -> Option<String> {
    let name = flow_cookie_name(secure);
    let mut found = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse_encoded(v.to_owned()))
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .map(|c| c.value().to_owned());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn deps(state: &AppState) -> AuthDeps<'_> {
    state.auth_deps()
}

/// The public base URL of this server, for callbacks: OIDC_CALLBACK_BASE_URL, else PUBLIC_URL,
/// else http://BIND_ADDR.
fn callback_base(state: &AppState) -> String {
    crate::oidc::callback_base(&state.config)
}

/// Where a flow may end: a path of this server, or a URL of this server's origin, PUBLIC_URL's
/// origin or one of CORS_ORIGINS. Anything else (another site, `//host`, credentials in the
/// URL) is refused: the callback never sends a browser, or a one-time code, elsewhere.
fn allowed_redirect(state: &AppState, redirect_to: Option<&str>) -> AppResult<String> {
    let base = callback_base(state);
    let home = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| base.clone());
    redirect_target(&home, &base, &state.config.cors_origins, redirect_to)
}

/// [`allowed_redirect`] with the origins given: `home` (relative targets resolve against it),
/// this server's `base`, and the app origins.
fn redirect_target(
    home: &str,
    base: &str,
    app_origins: &[String],
    redirect_to: Option<&str>,
) -> AppResult<String> {
    let refused = || {
        AppError::bad_input(
            "redirect_to",
            "must be a path of this server or a URL of its own or a configured app origin",
        )
    };
    let home = reqwest::Url::parse(home).map_err(AppError::internal)?;
    let Some(target) = redirect_to.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(home.join("/").map_err(AppError::internal)?.to_string());
    };
    if target.len() > 2000 || target.contains('\\') || target.chars().any(char::is_control) {
        return Err(refused());
    }
    let url = if target.starts_with('/') {
        if target.starts_with("//") {
            return Err(refused());
        }
        home.join(target).map_err(|_| refused())?
    } else {
        reqwest::Url::parse(target).map_err(|_| refused())?
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused());
    }
    let origin = url.origin().ascii_serialization();
    let allowed = [base.to_owned(), home.to_string()]
        .iter()
        .chain(app_origins.iter())
        .filter_map(|o| reqwest::Url::parse(o.trim()).ok())
        .any(|o| o.origin().ascii_serialization() == origin);
    if !allowed {
        return Err(refused());
    }
    Ok(url.to_string())
}

/// `url` with `name=value` added to its query.
fn with_param(url: &str, name: &str, value: &str) -> AppResult<String> {
    let mut url = reqwest::Url::parse(url).map_err(AppError::internal)?;
    url.query_pairs_mut().append_pair(name, value);
    Ok(url.to_string())
}

fn status_of(error: &AppError) -> StatusCode {
    match error {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Refused { code, .. } if *code == crate::error::code::CONFLICT => {
            StatusCode::CONFLICT
        }
        AppError::Refused { .. } => StatusCode::BAD_REQUEST,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable(_) | AppError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(error: &AppError) -> Response {
    if let AppError::Internal(detail) = error {
        tracing::error!(error = %crate::error::one_line(detail), "OIDC request failed");
    } else {
        tracing::info!(code = error.code(), reason = %error.message(), "OIDC request refused");
    }
    let mut body = json!({ "code": error.code(), "message": error.message() });
    match error {
        AppError::BadUserInput { path, .. } => body["field"] = json!(path),
        AppError::Refused { field, .. } => body["field"] = json!(field),
        _ => {}
    }
    let mut response = Response::builder()
        .status(status_of(error))
        .content_type("application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    if let AppError::RateLimited { retry_after_secs } = error {
        response = response.header(header::RETRY_AFTER, retry_after_secs.to_string());
    }
    response.body(serde_json::to_vec(&json!({ "error": body })).unwrap_or_default())
}

/// The OAuth 2.0 `error` (RFC 6749 4.1.2.1) an error stands for.
fn oauth_error(error: &AppError) -> &'static str {
    match error {
        AppError::BadUserInput { .. } | AppError::NotFound(_) => "invalid_request",
        AppError::Unauthenticated(_)
        | AppError::Forbidden(_)
        | AppError::Conflict(_)
        | AppError::Refused { .. } => "access_denied",
        AppError::RateLimited { .. } | AppError::Unavailable(_) | AppError::Overloaded { .. } => {
            "temporarily_unavailable"
        }
        AppError::Internal(_) => "server_error",
    }
}

/// Whether the request asks for a JSON answer rather than a redirect.
fn wants_json(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

/// A failure as the app at `return_to` gets it: the browser sent back with `error`,
/// `error_description` and `error_code`, the flow cookie cleared.
fn error_redirect(return_to: &str, error: &AppError, secure: bool) -> Response {
    let _ = error_response(error); // logs it
    let location = with_param(return_to, "error", oauth_error(error))
        .and_then(|url| with_param(&url, "error_description", &error.message()))
        .and_then(|url| with_param(&url, "error_code", error.code()));
    match location {
        Ok(location) => redirect(&location, vec![flow_cookie("", secure, 0)]),
        Err(_) => error_response(error),
    }
}

/// Where a failed request goes: back to the app at `return_to` unless it asks for JSON.
fn failure(req: &Request, state: &AppState, error: &AppError, return_to: Option<&str>) -> Response {
    match return_to {
        Some(url) if !wants_json(req) => error_redirect(url, error, state.config.cookies_secure()),
        _ => error_response(error),
    }
}

/// The app's return URL of the flow the browser's flow cookie names, if it is still pending
/// and named one (checked against the allow-list again).
async fn return_of_browser(req: &Request, state: &AppState) -> Option<String> {
    let cookie = read_flow_cookie(req, state.config.cookies_secure())?;
    let flow = state.oidc_flows.peek(&cookie).await.ok()??;
    if !flow.app_return {
        return None;
    }
    allowed_redirect(state, Some(&flow.redirect_to)).ok()
}

fn redirect(location: &str, cookies: Vec<String>) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store");
    for cookie in cookies {
        response = response.header(header::SET_COOKIE, cookie);
    }
    response.finish()
}

fn query(req: &Request) -> AppResult<HashMap<String, String>> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| AppError::bad_input("query", "the query string is malformed"))
}

/// The signed-in caller who links a provider: a bearer token, or the session cookies with the
/// CSRF token in the `csrf` parameter (bound to that session).
async fn linking_caller(
    req: &Request,
    state: &AppState,
    csrf: Option<&str>,
) -> AppResult<auth::Principal> {
    let secure = state.config.cookies_secure();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let jar = cookies::parse(req, secure);
    let viewer =
        auth::viewer::resolve(&state.jwt, &state.sessions, bearer, jar.access.as_deref()).await?;
    let Viewer::User(principal) = viewer else {
        return Err(AppError::Unauthenticated(
            "sign in first to link a provider".into(),
        ));
    };
    if bearer.is_none() {
        let key = auth::csrf_key(&state.jwt);
        let proven = match (csrf, jar.csrf.as_deref()) {
            (Some(given), Some(cookie)) if !jar.duplicate_csrf && equal(given, cookie) => {
                cookies::csrf_session(&key, given)
            }
            _ => None,
        };
        if proven != Some(principal.session_id) {
            return Err(AppError::Forbidden(
                "linking with the session cookies needs the CSRF token in `csrf`".into(),
            ));
        }
    }
    Ok(principal)
}

async fn start_flow(
    req: &Request,
    name: &str,
    state: &AppState,
    return_to: &mut Option<String>,
) -> AppResult<Response> {
    let params = query(req)?;
    let app_return = params
        .get("redirect_to")
        .is_some_and(|r| !r.trim().is_empty());
    let redirect_to = allowed_redirect(state, params.get("redirect_to").map(String::as_str))?;
    if app_return {
        *return_to = Some(redirect_to.clone());
    }
    let provider = state.oidc.resolve(&state.db, &state.secrets, name).await?;
    let secure = state.config.cookies_secure();
    let meta = RequestMeta::from_request(req, secure);
    state
        .ratelimit
        .check_bucket(Bucket::LoginIp, meta.ip_key())
        .await?;
    let mode = match params.get("mode").map(String::as_str) {
        None | Some("cookie") => Mode::Cookie,
        Some("code") => Mode::Code,
        Some(_) => return Err(AppError::bad_input("mode", "must be `cookie` or `code`")),
    };
    let link = match params.get("link").map(String::as_str) {
        None | Some("0") | Some("false") => None,
        Some("1") | Some("true") => {
            let principal =
                linking_caller(req, state, params.get("csrf").map(String::as_str)).await?;
            Some(LinkTo {
                user: principal.user_id,
                company: principal.company_id,
                session: principal.session_id,
            })
        }
        Some(_) => return Err(AppError::bad_input("link", "must be `1` or absent")),
    };
    let (state_token, nonce, verifier) = (
        flow::random_token(),
        flow::random_token(),
        flow::random_token(),
    );
    let url = provider
        .authorization_url(
            &crate::oidc::callback_url(&state.config, name),
            &state_token,
            &nonce,
            &flow::code_challenge(&verifier),
        )
        .await?;
    state
        .oidc_flows
        .start(
            &state_token,
            &Flow {
                provider: name.to_owned(),
                nonce,
                code_verifier: verifier,
                redirect_to,
                app_return,
                mode,
                link,
            },
        )
        .await?;
    let max_age = flow::FLOW_TTL.as_secs() as i64;
    Ok(redirect(
        &url,
        vec![flow_cookie(&state_token, secure, max_age)],
    ))
}

async fn finish_flow(
    req: &Request,
    name: &str,
    state: &AppState,
    return_to: &mut Option<String>,
) -> AppResult<Response> {
    let provider = state.oidc.resolve(&state.db, &state.secrets, name).await?;
    let params = query(req)?;
    let secure = state.config.cookies_secure();
    let unknown_state = || {
        AppError::bad_input(
            "state",
            "unknown, used or expired sign-in state; start again",
        )
    };
    let state_token = params.get("state").ok_or_else(unknown_state)?;
    // Taken once, whatever follows: a second callback with this state finds nothing.
    let flow = state
        .oidc_flows
        .finish(state_token)
        .await?
        .ok_or_else(unknown_state)?;
    if flow.app_return {
        *return_to = Some(flow.redirect_to.clone());
    }
    if flow.provider != name {
        return Err(unknown_state());
    }
    match read_flow_cookie(req, secure) {
        Some(cookie) if equal(&cookie, state_token) => {}
        _ => {
            return Err(AppError::Forbidden(
                "this sign-in was started in another browser".into(),
            ));
        }
    }
    if let Some(error) = params.get("error") {
        return Err(AppError::Unauthenticated(format!(
            "the provider did not sign you in: {error}{}",
            params
                .get("error_description")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )));
    }
    // RFC 9207: a response naming another issuer is a mix-up.
    if let Some(iss) = params.get("iss")
        && *iss != provider.config.issuer
    {
        return Err(AppError::Unauthenticated(
            "the authorization response names another issuer".into(),
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| AppError::bad_input("code", "the provider sent no authorization code"))?;
    let id_token = provider
        .exchange(
            code,
            &crate::oidc::callback_url(&state.config, name),
            &flow.code_verifier,
        )
        .await?;
    let identity = provider.verify(&id_token, &flow.nonce).await?;
    let deps = deps(state);
    let meta = RequestMeta::from_request(req, secure);
    let completed = identities::complete(
        &deps,
        &meta,
        &provider.config,
        &identity,
        flow.link.as_ref(),
    )
    .await?;
    let clear = flow_cookie("", secure, 0);
    match completed {
        Completed::Linked => Ok(redirect(
            &with_param(&flow.redirect_to, "oidc_linked", name)?,
            vec![clear],
        )),
        Completed::SignedIn {
            user,
            company,
            role,
        } => match flow.mode {
            Mode::Code => {
                let code = state
                    .oidc_flows
                    .issue_code(&SignedIn {
                        user,
                        company,
                        role: role.as_str().to_owned(),
                    })
                    .await?;
                Ok(redirect(
                    &with_param(&flow.redirect_to, "oidc_code", &code)?,
                    vec![clear],
                ))
            }
            Mode::Cookie => {
                let issued = auth_service::start_session(&deps, &meta, user, company, role).await?;
                let csrf =
                    cookies::csrf_token(&auth::csrf_key(&state.jwt), issued.principal.session_id);
                let access_ttl = (issued.access_expires_at - Utc::now()).num_seconds().max(0);
                let refresh_ttl = (issued.refresh_expires_at - Utc::now())
                    .num_seconds()
                    .max(0);
                let mut set = cookies::set_session(
                    &issued.access_token,
                    access_ttl,
                    &issued.refresh_token,
                    refresh_ttl,
                    &csrf,
                    secure,
                );
                set.push(clear);
                Ok(redirect(&flow.redirect_to, set))
            }
        },
    }
}

/// `GET /auth/oidc/:provider/start`.
#[handler]
pub async fn start(
    req: &Request,
    Path(provider): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let mut return_to = None;
    match start_flow(req, &provider, state, &mut return_to).await {
        Ok(response) => response,
        Err(error) => failure(req, state, &error, return_to.as_deref()),
    }
}

/// `GET /auth/oidc/:provider/callback`.
#[handler]
pub async fn callback(
    req: &Request,
    Path(provider): Path<String>,
    Data(state): Data<&AppState>,
) -> Response {
    let mut return_to = None;
    match finish_flow(req, &provider, state, &mut return_to).await {
        Ok(response) => response,
        Err(error) => {
            if return_to.is_none() {
                return_to = return_of_browser(req, state).await;
            }
            failure(req, state, &error, return_to.as_deref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(redirect_to: &str) -> Option<String> {
        redirect_target(
            "https://app.example.com",
            "https://api.example.com",
            &["https://admin.example.com".to_owned()],
            Some(redirect_to),
        )
        .ok()
    }

    #[test]
    fn flows_end_only_on_this_server_or_its_apps() {
        assert_eq!(
            target("/home?x=1").as_deref(),
            Some("https://app.example.com/home?x=1")
        );
        assert_eq!(
            target("https://api.example.com/done").as_deref(),
            Some("https://api.example.com/done")
        );
        assert!(target("https://admin.example.com/").is_some());
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "javascript:alert(1)",
            "/x\nSet-Cookie: a=b",
        ] {
            assert_eq!(target(bad), None, "{bad}");
        }
        let default = redirect_target(
            "https://app.example.com",
            "https://api.example.com",
            &[],
            None,
        );
        assert_eq!(default.ok().as_deref(), Some("https://app.example.com/"));
    }
}
