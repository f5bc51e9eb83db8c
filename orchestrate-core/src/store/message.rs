//! Agent mailboxes: messages with priority, threads, delivery status and a
//! dead letter after too many deliveries.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message to put in an agent's mailbox.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// The receiving agent.
    pub recipient: String,
    /// The sending agent, if any.
    pub sender: Option<String>,
    /// The conversation the message belongs to.
    pub thread: Option<String>,
    /// Higher is delivered first; FIFO within one priority.
    pub priority: i32,
    /// The content.
    pub payload: Value,
}

impl NewMessage {
    /// A message of priority 0 to `recipient`.
    pub fn new(recipient: impl Into<String>, payload: Value) -> Self {
        Self {
            recipient: recipient.into(),
            sender: None,
            thread: None,
            priority: 0,
            payload,
        }
    }

    /// Sets the sender.
    pub fn from(mut self, sender: impl Into<String>) -> Self {
        self.sender = Some(sender.into());
        self
    }

    /// Sets the thread.
    pub fn in_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting in the mailbox.
    Pending,
    /// Handed to the recipient, not yet acknowledged.
    Delivered,
    /// Acknowledged.
    Processed,
    /// Delivered too many times without acknowledgement: set aside.
    Dead,
}

impl MessageStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Processed => "processed",
            MessageStatus::Dead => "dead",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => MessageStatus::Pending,
            "delivered" => MessageStatus::Delivered,
            "processed" => MessageStatus::Processed,
            "dead" => MessageStatus::Dead,
            _ => return None,
        })
    }
}

/// A stored message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Assigned by the store, increasing.
    pub id: i64,
    /// The receiving agent.
    pub recipient: String,
    /// The sending agent.
    pub sender: Option<String>,
    /// The conversation.
    pub thread: Option<String>,
    /// Its priority.
    pub priority: i32,
    /// The content.
    pub payload: Value,
    /// Its status.
    pub status: MessageStatus,
    /// Times it was handed out.
    pub deliveries: u32,
    /// When it was sent, milliseconds since the epoch (store clock).
    pub created_at_ms: u64,
}

/// How [`Store::fetch_messages`](super::Store::fetch_messages) hands messages out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// At most this many (default 16).
    pub limit: usize,
    /// A delivered message not acknowledged within this is handed out again
    /// (default 30 s).
    pub visibility: Duration,
    /// A message that would be delivered more often than this is marked
    /// [`Dead`](MessageStatus::Dead) instead (default 5).
    pub max_deliveries: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            limit: 16,
            visibility: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }
}

/// Which messages [`Store::list_messages`](super::Store::list_messages) returns (by id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// Only this recipient's.
    pub recipient: Option<String>,
    /// Only in this status (e.g. [`Dead`](MessageStatus::Dead): the dead-letter queue).
    pub status: Option<MessageStatus>,
    /// Only this thread's.
    pub thread: Option<String>,
}
