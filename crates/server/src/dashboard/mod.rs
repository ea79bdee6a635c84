//! The web dashboard at `/`: server-rendered pages (askama templates in
//! `crates/server/templates/`) with plain HTML forms, no script needed.
//!
//! People sign in with a user (`medrelay user add`); a session is a random
//! token in an HttpOnly, SameSite=Strict cookie (Secure behind TLS), stored
//! only as its hash. Every form carries the session's CSRF token and every
//! POST checks it. Five wrong passwords lock a user for 15 minutes. Roles:
//! `viewer` reads, `operator` also changes (delete, resend, devices),
//! `admin` also reads the audit log. Viewing patient data and every change
//! is written to the audit log. Where a page goes: [`pages`].

mod pages;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use medrelay_store::{Millis, Session};
use serde::Deserialize;

use crate::AppState;
use crate::auth::hash;

pub(crate) const SESSION_COOKIE: &str = "mr_session";
const LOGIN_COOKIE: &str = "mr_login";
/// How long a session lasts.
const SESSION_MS: Millis = 8 * 3600 * 1000;
/// Wrong passwords in a row before the user is locked, and for how long.
pub const LOCK_AFTER: u32 = 5;
const LOCK_MS: Millis = 15 * 60 * 1000;

/// The dashboard's routes (merged at `/`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/overview/figures", get(pages::overview_figures))
        .route("/channels/{name}/state", post(pages::set_channel_state))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/worklist", get(pages::worklist))
        .route(
            "/worklist/{id}/delete",
            get(pages::confirm_delete).post(pages::delete_appointment),
        )
        .route("/devices", get(pages::devices).post(pages::add_device))
        .route("/devices/{id}/token", post(pages::rotate_token))
        .route("/devices/{id}/move", post(pages::move_device))
        .route("/devices/{id}/delete", post(pages::delete_device))
        .route("/groups", post(pages::add_group))
        .route("/groups/{name}/rename", post(pages::rename_group))
        .route("/groups/{name}/delete", post(pages::delete_group))
        .route("/measurements", get(pages::measurements))
        .route("/measurements/{id}", get(pages::measurement))
        .route("/measurements/{id}/report.pdf", get(pages::report_pdf))
        .route("/measurements/{id}/resend", post(pages::resend))
        .route("/messages", get(pages::messages))
        .route("/messages/{id}", get(pages::message))
        .route("/messages/{id}/reprocess", post(pages::reprocess))
        .route("/audit", get(pages::audit))
        .route("/orgs", get(pages::orgs).post(pages::add_org))
        .route("/orgs/switch", post(pages::switch_org))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/dashboard.css"),
    )
}

pub(crate) fn now() -> Millis {
    medrelay_engine::clock::now_ms()
}

/// A random token for cookies and CSRF fields.
fn random_token() -> Result<String, Page> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Page::internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Secure` only where the browser reached us over TLS (a proxy says so).
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

// ---------------------------------------------------------------- who

/// The signed-in person, as pages show them.
#[derive(Clone)]
pub struct UserView {
    pub name: String,
    pub role: String,
    pub org: String,
    pub csrf: String,
    pub is_admin: bool,
    /// A user of the whole installation: manages and switches organisations.
    pub installation: bool,
}

/// The `org` of a user of the whole installation.
pub const INSTALLATION: &str = "*";

/// A request with a valid session. Without one, pages redirect to /login.
pub struct Signed(pub Session);

impl Signed {
    pub fn view(&self) -> UserView {
        let u = &self.0.user;
        UserView {
            name: u.name.clone(),
            role: u.role.clone(),
            org: self.org().to_string(),
            csrf: self.0.csrf.clone(),
            is_admin: u.role == "admin",
            installation: self.installation(),
        }
    }

    /// The organisation every read and change of this request is confined
    /// to: the user's own, or the one a user of the whole installation
    /// switched to (`default` until then).
    pub fn org(&self) -> &str {
        if self.installation() {
            self.0.org.as_deref().unwrap_or(medrelay_store::DEFAULT_ORG)
        } else {
            &self.0.user.org
        }
    }

    pub fn installation(&self) -> bool {
        self.0.user.org == INSTALLATION
    }

    pub fn name(&self) -> &str {
        &self.0.user.name
    }

    /// Operators and admins change things; viewers only look.
    pub fn can_change(&self) -> bool {
        matches!(self.0.user.role.as_str(), "admin" | "operator")
    }

    /// 403 unless the person may change things.
    pub fn require_change(&self) -> Result<(), Page> {
        if self.can_change() {
            Ok(())
        } else {
            Err(Page::forbidden(
                "Your role (viewer) may look but not change anything.",
            ))
        }
    }

    /// A change through a form: its CSRF token, then the role.
    pub fn may_change(&self, csrf: Option<&str>) -> Result<(), Page> {
        self.check_csrf(csrf)?;
        self.require_change()
    }

    /// The form's `csrf` must be this session's token.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), Page> {
        match given {
            Some(t) if !t.is_empty() && crate::auth::same_secret(t, &self.0.csrf) => Ok(()),
            _ => Err(Page::forbidden(
                "The form's CSRF token is missing or wrong; reload the page and try again.",
            )),
        }
    }

    /// Writes to the audit log; a failure to write it is logged, not shown.
    pub async fn audit(&self, state: &AppState, action: &str, subject: &str, detail: Option<&str>) {
        if let Err(e) = state
            .store
            .audit(self.org(), self.name(), action, subject, detail)
            .await
        {
            tracing::error!(error = %e, "the audit log could not be written");
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        match state.store.session_by_hash(&hash(&token), now()).await {
            Ok(Some(s)) => Ok(Signed(s)),
            Ok(None) => Err(to_login()),
            Err(e) => Err(Page::internal(e.to_string()).into_response()),
        }
    }
}

// ---------------------------------------------------------------- pages

/// An error page with its status.
pub struct Page {
    status: StatusCode,
    heading: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    user: Option<UserView>,
    flash: Option<String>,
    heading: &'a str,
    message: &'a str,
}

impl Page {
    pub fn forbidden(message: impl Into<String>) -> Page {
        Page {
            status: StatusCode::FORBIDDEN,
            heading: "Forbidden",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Page {
        Page {
            status: StatusCode::NOT_FOUND,
            heading: "Not found",
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Page {
        Page {
            status: StatusCode::BAD_REQUEST,
            heading: "Not possible",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Page {
        let message = message.into();
        tracing::error!(error = %message, "dashboard");
        Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            heading: "Something went wrong",
            message: "The server could not do this; the details are in its log.".into(),
        }
    }
}

impl From<medrelay_store::StoreError> for Page {
    fn from(e: medrelay_store::StoreError) -> Self {
        match e {
            medrelay_store::StoreError::NotFound => {
                Page::not_found("It does not exist (any more).")
            }
            medrelay_store::StoreError::Conflict(m) | medrelay_store::StoreError::Invalid(m) => {
                Page::bad_request(m)
            }
            other => Page::internal(other.to_string()),
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let body = ErrorTemplate {
            user: None,
            flash: None,
            heading: self.heading,
            message: &self.message,
        }
        .render()
        .unwrap_or_else(|_| self.message.clone());
        (self.status, Html(body)).into_response()
    }
}

/// Renders a template, or the error page if that fails.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => Page::internal(format!("template: {e}")).into_response(),
    }
}

// ---------------------------------------------------------------- sign in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate {
    user: Option<UserView>,
    flash: Option<String>,
    csrf: String,
    error: Option<String>,
}

/// The sign-in form; its CSRF token is a cookie the form must repeat
/// (there is no session yet to hold it).
async fn login_page(headers: HeaderMap) -> Result<Response, Page> {
    login_form(&headers, None, StatusCode::OK)
}

fn login_form(
    headers: &HeaderMap,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Page> {
    let csrf = random_token()?;
    let mut response = render(&LoginTemplate {
        user: None,
        flash: None,
        csrf: csrf.clone(),
        error,
    });
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &csrf, 3600),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, Page> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::auth::same_secret(&f.csrf, &expected) {
        return Err(Page::forbidden(
            "The sign-in form's CSRF token is missing or wrong; reload the page and try again.",
        ));
    }
    let wrong = || Some("Wrong user name or password.".to_string());
    let Some((user, password_hash)) = state.store.user_by_name(f.username.trim()).await? else {
        // The same work as for a real user, so timing does not tell names apart.
        let _ = medrelay_store::oauth::verify_secret(f.password, String::new()).await;
        return login_form(&headers, wrong(), StatusCode::UNAUTHORIZED);
    };
    let t = now();
    if user.locked_until.is_some_and(|until| until > t) {
        return login_form(
            &headers,
            Some("This account is locked after too many wrong passwords; try again in 15 minutes or ask an admin.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    if !medrelay_store::oauth::verify_secret(f.password, password_hash).await? {
        let after = state
            .store
            .record_login_failure(&user.id, t, LOCK_AFTER, LOCK_MS)
            .await?;
        let message = if after.locked_until.is_some_and(|u| u > t) {
            "This account is now locked after too many wrong passwords; try again in 15 minutes or ask an admin."
        } else {
            "Wrong user name or password."
        };
        let _ = state
            .store
            .audit(&user.org, &user.name, "sign-in failed", "dashboard", None)
            .await;
        return login_form(&headers, Some(message.into()), StatusCode::UNAUTHORIZED);
    }
    state.store.record_login_success(&user.id, t).await?;
    let token = random_token()?;
    let csrf = random_token()?;
    state
        .store
        .create_session(&hash(&token), &user.id, &csrf, t, t + SESSION_MS)
        .await?;
    let _ = state
        .store
        .audit(&user.org, &user.name, "signed in", "dashboard", None)
        .await;
    let mut response = Redirect::to("/").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &token, SESSION_MS / 1000),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", 0),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Signed,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.check_csrf(f.csrf.as_deref())?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.store.delete_session(&hash(&token)).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}

/// Epoch milliseconds as `2026-12-03 08:15:00` (UTC).
pub fn when(ms: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
