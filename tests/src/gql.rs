//! A GraphQL response as the tests see it.

use serde_json::Value;

/// Status, content type and JSON body of a GraphQL HTTP response.
#[derive(Debug, Clone)]
pub struct GqlResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    /// `Set-Cookie` headers of the response.
    pub set_cookies: Vec<String>,
    /// Every header of the response.
    pub headers: reqwest::header::HeaderMap,
}

impl GqlResponse {
    pub async fn from_reqwest(response: reqwest::Response) -> anyhow::Result<Self> {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let set_cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("response is not JSON ({e}): {text}"))?;
        Ok(Self {
            status,
            content_type,
            body,
            set_cookies,
            headers,
        })
    }

    /// `data`, failing when the response has errors.
    pub fn data(&self) -> anyhow::Result<&Value> {
        if let Some(errors) = self.body.get("errors") {
            anyhow::bail!("unexpected errors: {errors}");
        }
        Ok(&self.body["data"])
    }

    /// The `extensions.code` of the first error, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// The message of the first error, if any.
    pub fn error_message(&self) -> Option<&str> {
        self.body["errors"][0]["message"].as_str()
    }
}

impl GqlResponse {
    /// The value a `Set-Cookie` header of this response gives cookie `name`, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (n, v) = pair.split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }

    /// The full `Set-Cookie` header for cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}
