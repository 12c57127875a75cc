//! The support console over HTTP as a browser without script would use
//! it: redirects shown rather than followed, and exactly the cookie a test
//! gives each request.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{redirect, Client, StatusCode};

use super::api::TestApi;

/// A client that shows redirects instead of following them and keeps no
/// cookies: each request carries exactly the cookie the test gives it.
pub fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .unwrap_or_else(|| panic!("no Location on a {} answer", self.status))
            .to_str()
            .unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header on a {} answer", self.status))
            .to_str()
            .unwrap()
    }

    /// The `Set-Cookie` of the session cookie.
    pub fn session_cookie(&self) -> &str {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("pushrelay_console="))
            .unwrap_or_else(|| panic!("no session cookie set ({:?})", self.headers))
    }
}

pub async fn answer(res: reqwest::Response) -> Answer {
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

/// GET `path` with `cookie` (`name=value`), if any.
pub async fn get(api: &TestApi, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = client().get(api.url(path));
    if let Some(cookie) = cookie {
        req = req.header("Cookie", cookie);
    }
    answer(req.send().await.unwrap()).await
}

/// POST the sign-in form with extra headers.
pub async fn sign_in_with(
    api: &TestApi,
    key: &str,
    next: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = client()
        .post(api.url("/console/sign-in"))
        .form(&[("key", key), ("next", next)]);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    answer(req.send().await.unwrap()).await
}

/// Signs in with `key`; returns the cookie to send back (`name=value`).
pub async fn sign_in(api: &TestApi, key: &str) -> String {
    let res = sign_in_with(api, key, "/console/overview", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    cookie_pair(res.session_cookie())
}

pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}
