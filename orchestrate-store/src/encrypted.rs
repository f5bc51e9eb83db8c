//! [`EncryptedStore`]: seals payloads at rest with AES-256-GCM, around any
//! store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use orchestrate_core::journal::{Event, EventKind, ExecutionStart};
use orchestrate_core::store::{
    check_batch, check_value, ExecutionQuery, ExecutionSummary, FetchOptions, Message,
    MessageQuery, NewMessage, Problem, RebuildReport, Store, StoreError, VerifyReport,
};
use orchestrate_core::ExecutionId;
use serde_json::{json, Value};

/// The marker key of a sealed value: `{"$sealed": "v1:<base64>"}`.
const SEALED: &str = "$sealed";
const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;

/// A 256-bit key supplied by the host (from a secret manager, an
/// environment variable, ...). Its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from standard base64 (44 characters).
    ///
    /// # Errors
    ///
    /// [`StoreError::Codec`] when the text is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| StoreError::Codec {
                what: "encryption key".into(),
                reason: e.to_string(),
            })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| StoreError::Codec {
            what: "encryption key".into(),
            reason: format!("{} bytes, expected 32", b.len()),
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

/// Wraps any [`Store`] so that what agents and hosts put in it is sealed
/// with AES-256-GCM before it is written: execution inputs, step and call
/// outputs, custom event payloads, interrupt payloads and decisions,
/// key-value values and messages. Ids, statuses and event kinds stay readable, so listing and
/// projections keep working.
///
/// Each sealed value is bound to its place (execution, sequence number and
/// field, or key), so a value copied elsewhere does not open. Reading a
/// value sealed with another key, tampered with, or not sealed at all is an
/// error; nothing is returned unverified.
///
/// # Examples
///
/// ```
/// use orchestrate_core::store::{MemoryStore, Store};
/// use orchestrate_store::encrypted::{EncryptedStore, EncryptionKey};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), orchestrate_core::store::StoreError> {
/// let store = EncryptedStore::new(MemoryStore::new(), EncryptionKey::from_bytes([7; 32]));
/// store.kv_put("token", json!("s3cr3t"), None).await?;
/// assert_eq!(store.kv_get("token").await?, Some(json!("s3cr3t")));
/// // The inner store holds ciphertext only.
/// let sealed = store.inner().kv_get("token").await?.unwrap();
/// assert!(!sealed.to_string().contains("s3cr3t"));
/// # Ok(())
/// # }
/// ```
pub struct EncryptedStore<S> {
    inner: S,
    cipher: Aes256Gcm,
}

impl<S> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore").finish_non_exhaustive()
    }
}

fn codec(what: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Codec {
        what: what.into(),
        reason: reason.into(),
    }
}

impl<S: Store> EncryptedStore<S> {
    /// Seals everything written to `inner` with `key`.
    pub fn new(inner: S, key: EncryptionKey) -> Self {
        Self {
            inner,
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }

    /// The wrapped store (which sees only sealed payloads).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn seal(&self, value: &Value, place: &str) -> Result<Value, StoreError> {
        // The inner store sees only the shallow sealed form: the depth of
        // what it hides is checked here.
        check_value(|| place.to_owned(), value)?;
        let plain = serde_json::to_vec(value).map_err(|e| codec(place, e.to_string()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| codec(place, "encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(json!({ SEALED: format!("{VERSION}{}", STANDARD.encode(bytes)) }))
    }

    fn open(&self, value: &Value, place: &str) -> Result<Value, StoreError> {
        let text = value
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get(SEALED))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                codec(
                    place,
                    "the stored value is not sealed; refusing to read it unverified",
                )
            })?;
        let encoded = text
            .strip_prefix(VERSION)
            .ok_or_else(|| codec(place, "unknown sealing version"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| codec(place, e.to_string()))?;
        if bytes.len() < NONCE_LEN {
            return Err(codec(place, "sealed value too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| codec(place, "bad nonce"))?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| {
                codec(
                    place,
                    "cannot decrypt: wrong key, or the value was tampered with",
                )
            })?;
        serde_json::from_slice(&plain).map_err(|e| codec(place, e.to_string()))
    }

    /// Applies `f` to every sealed field of an event, with its place.
    fn map_event(
        &self,
        event: &Event,
        f: impl Fn(&Self, &Value, &str) -> Result<Value, StoreError>,
    ) -> Result<Event, StoreError> {
        let place = |field: &str| {
            format!(
                "execution `{}`, seq {}, {field}",
                event.execution_id, event.seq
            )
        };
        let arc = |v: &Arc<Value>, field: &str| f(self, v, &place(field)).map(Arc::new);
        let kind = match &event.kind {
            EventKind::ExecutionStarted(start) => {
                EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                    input: arc(&start.input, "input")?,
                    ..ExecutionStart::clone(start)
                }))
            }
            EventKind::StepSucceeded {
                step,
                output,
                attempts,
                fallback_from,
            } => EventKind::StepSucceeded {
                step: step.clone(),
                output: arc(output, "output")?,
                attempts: *attempts,
                fallback_from: fallback_from.clone(),
            },
            EventKind::Custom {
                step,
                name,
                payload,
            } => EventKind::Custom {
                step: step.clone(),
                name: name.clone(),
                payload: Box::new(f(self, payload, &place("payload"))?),
            },
            EventKind::CallCompleted {
                call,
                output,
                attempts,
            } => EventKind::CallCompleted {
                call: call.clone(),
                output: arc(output, "output")?,
                attempts: *attempts,
            },
            EventKind::SideEffect { call, name, value } => EventKind::SideEffect {
                call: call.clone(),
                name: name.clone(),
                value: arc(value, "value")?,
            },
            EventKind::Decision(decision) => {
                EventKind::Decision(Arc::new(orchestrate_core::journal::Decision {
                    value: f(self, &decision.value, &place("value"))?,
                    ..orchestrate_core::journal::Decision::clone(decision)
                }))
            }
            EventKind::StepInterrupted { step, payload } => EventKind::StepInterrupted {
                step: step.clone(),
                payload: arc(payload, "payload")?,
            },
            EventKind::StepDecided {
                step,
                approved,
                value,
                reason,
            } => EventKind::StepDecided {
                step: step.clone(),
                approved: *approved,
                value: value.as_ref().map(|v| arc(v, "value")).transpose()?,
                reason: reason.clone(),
            },
            other => other.clone(),
        };
        Ok(Event {
            execution_id: event.execution_id.clone(),
            seq: event.seq,
            at_us: event.at_us,
            kind,
        })
    }
}

fn kv_place(key: &str) -> String {
    format!("key `{key}`")
}

#[async_trait]
impl<S: Store> Store for EncryptedStore<S> {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        check_batch(execution, events)?;
        let sealed = events
            .iter()
            .map(|e| self.map_event(e, Self::seal))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.append(execution, &sealed).await
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        self.inner
            .load(execution, from)
            .await?
            .iter()
            .map(|e| self.map_event(e, Self::open))
            .collect()
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.inner.list_executions(query).await
    }

    /// The inner store's report, and every sealed value that does not open
    /// (a wrong key, or a value tampered with), as an unreadable record.
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = self.inner.verify().await?;
        for summary in self.inner.list_executions(&ExecutionQuery::all()).await? {
            // A journal the inner store cannot read is in its report already.
            let Ok(events) = self.inner.load(&summary.id, 0).await else {
                continue;
            };
            for event in &events {
                if let Err(e) = self.map_event(event, Self::open) {
                    report.problems.push(Problem::UnreadableRecord {
                        execution: summary.id.clone(),
                        seq: event.seq,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(report)
    }

    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError> {
        // What a projection holds (workflow, status, key) is never sealed.
        self.inner.rebuild_projections().await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.inner
            .kv_get(key)
            .await?
            .map(|v| self.open(&v, &kv_place(key)))
            .transpose()
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let sealed = self.seal(&value, &kv_place(key))?;
        self.inner.kv_put(key, sealed, ttl).await
    }

    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        let sealed = self.seal(&value, &kv_place(key))?;
        self.inner
            .kv_put_if_absent(key, sealed, ttl)
            .await?
            .map(|v| self.open(&v, &kv_place(key)))
            .transpose()
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.kv_delete(key).await
    }

    async fn send_message(&self, mut message: NewMessage) -> Result<i64, StoreError> {
        // Ids are assigned by the store, so the seal is bound to the mailbox.
        let place = message_place(&message.recipient);
        message.payload = self.seal(&message.payload, &place)?;
        self.inner.send_message(message).await
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        let messages = self.inner.fetch_messages(recipient, options).await?;
        messages.into_iter().map(|m| self.open_message(m)).collect()
    }

    async fn ack_message(&self, id: i64) -> Result<(), StoreError> {
        self.inner.ack_message(id).await
    }

    async fn release_message(&self, id: i64) -> Result<(), StoreError> {
        self.inner.release_message(id).await
    }

    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        let messages = self.inner.list_messages(query).await?;
        messages.into_iter().map(|m| self.open_message(m)).collect()
    }
}

fn message_place(recipient: &str) -> String {
    format!("mailbox `{recipient}`")
}

impl<S: Store> EncryptedStore<S> {
    fn open_message(&self, mut message: Message) -> Result<Message, StoreError> {
        message.payload = self.open(&message.payload, &message_place(&message.recipient))?;
        Ok(message)
    }
}
