//! The offline demo provider: with no `LLM_BASE_URL` it streams a deterministic reply at a
//! human reading pace, so the playground works out of the box. Its model name and its text
//! say plainly that no real model answered.

use std::time::Duration;

use futures_util::StreamExt;

use super::{ChatRequest, EventStream, LlmError, Provider, Role, StreamEvent};

/// The model name stored with demo replies.
pub const DEMO_MODEL: &str = "demo (offline, no LLM configured)";

/// Streams a canned reply, one word every `pace`.
#[derive(Debug, Clone)]
pub struct DemoProvider {
    pace: Duration,
}

impl DemoProvider {
    pub fn new(pace: Duration) -> Self {
        Self { pace }
    }

    /// The reply to a prompt: the same prompt always gets the same reply.
    pub fn reply(request: &ChatRequest) -> String {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let words = last.split_whitespace().count();
        // Not counting the system prompt and the message being answered.
        let earlier = request.messages.len().saturating_sub(2);
        format!(
            "[demo model] This reply comes from the offline demo provider, not a real AI model: \
             set LLM_BASE_URL (and LLM_API_KEY, LLM_MODEL) to talk to one. Your message had \
             {words} word(s), and {earlier} earlier message(s) were sent as context. \
             Replies stream word by word over the `conversationEvents` subscription, and \
             every open client of this conversation sees the same text."
        )
    }
}

#[async_trait::async_trait]
impl Provider for DemoProvider {
    fn model(&self) -> &str {
        DEMO_MODEL
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let reply = Self::reply(&request);
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let mut pieces: Vec<String> = reply.split_inclusive(' ').map(str::to_owned).collect();
        let completion = pieces.len() as u32;
        let pace = self.pace;
        let usage = StreamEvent::Usage {
            // A rough count (about four characters a token), clearly not a real tokenizer.
            prompt: (prompt_chars / 4) as u32,
            completion,
        };
        pieces.reverse();
        let words = futures_util::stream::unfold(pieces, move |mut pieces| async move {
            let piece = pieces.pop()?;
            tokio::time::sleep(pace).await;
            Some((Ok(StreamEvent::Delta(piece)), pieces))
        });
        let tail = futures_util::stream::iter([Ok(usage)]);
        Ok(words.chain(tail).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::PromptMessage;

    #[tokio::test]
    async fn streams_the_same_reply_for_the_same_prompt() {
        let provider = DemoProvider::new(Duration::ZERO);
        let request = ChatRequest {
            messages: vec![PromptMessage {
                role: Role::User,
                content: "hello there".into(),
            }],
        };
        let mut text = String::new();
        let mut stream = match provider.stream(request.clone()).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        while let Some(Ok(event)) = stream.next().await {
            if let StreamEvent::Delta(piece) = event {
                text.push_str(&piece);
            }
        }
        assert_eq!(text, DemoProvider::reply(&request));
        assert!(text.starts_with("[demo model]"));
    }
}
