//! A GraphQL response as the tests see it.

use serde_json::Value;

/// Status, content type and JSON body of a GraphQL HTTP response.
#[derive(Debug, Clone)]
pub struct GqlResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
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
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("response is not JSON ({e}): {text}"))?;
        Ok(Self {
            status,
            content_type,
            body,
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
