//! What the provider is sent: the system prompt, the user's knowledge, and as much recent
//! history as fits the budget (in characters; the newest message always goes).

use crate::llm::{ChatRequest, PromptMessage, Role};

/// Used when a conversation has no system prompt of its own.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful assistant. Answer clearly and concisely.";

/// A message of the history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: String,
}

/// Builds the request. `knowledge` is newest first; notes are given up to half the budget.
pub fn build(
    system_prompt: Option<&str>,
    knowledge: &[String],
    history: &[HistoryMessage],
    budget: usize,
) -> ChatRequest {
    let mut system = system_prompt
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SYSTEM_PROMPT)
        .to_owned();
    let mut notes_left = budget / 2;
    let mut notes = Vec::new();
    for note in knowledge {
        let size = note.chars().count();
        if size > notes_left {
            break;
        }
        notes_left -= size;
        notes.push(note.trim());
    }
    if !notes.is_empty() {
        system.push_str("\n\nNotes the user keeps for you (use them as context):");
        for note in notes.iter().rev() {
            system.push_str("\n- ");
            system.push_str(note);
        }
    }
    let mut left = budget;
    let mut kept = Vec::new();
    for (i, message) in history.iter().rev().enumerate() {
        let size = message.content.chars().count();
        if i > 0 && size > left {
            break;
        }
        left = left.saturating_sub(size);
        kept.push(PromptMessage {
            role: message.role,
            content: message.content.clone(),
        });
    }
    kept.reverse();
    let mut messages = Vec::with_capacity(kept.len() + 1);
    messages.push(PromptMessage {
        role: Role::System,
        content: system,
    });
    messages.extend(kept);
    ChatRequest { messages }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str) -> HistoryMessage {
        HistoryMessage {
            role,
            content: content.to_owned(),
        }
    }

    #[test]
    fn keeps_the_newest_history_that_fits_and_the_notes() {
        let history = [
            msg(Role::User, "aaaaaaaaaa"),
            msg(Role::Assistant, "bbbbbbbbbb"),
            msg(Role::User, "cccccccccc"),
        ];
        let notes = ["likes tea".to_owned()];
        let request = build(Some("Be brief."), &notes, &history, 25);
        assert_eq!(request.messages.len(), 3);
        assert_eq!(request.messages[0].role, Role::System);
        assert!(request.messages[0].content.starts_with("Be brief."));
        assert!(request.messages[0].content.contains("- likes tea"));
        assert_eq!(request.messages[1].content, "bbbbbbbbbb");
        assert_eq!(request.messages[2].content, "cccccccccc");
    }

    #[test]
    fn the_newest_message_goes_even_over_budget() {
        let history = [msg(Role::User, "a long message")];
        let request = build(None, &[], &history, 3);
        assert_eq!(request.messages.len(), 2);
        assert_eq!(request.messages[0].content, DEFAULT_SYSTEM_PROMPT);
    }
}
