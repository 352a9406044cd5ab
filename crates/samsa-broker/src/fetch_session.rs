//! Incremental fetch sessions (KIP-227), as the Java client and kafka-python use
//! them.
//!
//! A client opens a session with `session_id = 0, epoch = 0` and names all its
//! partitions once. Later requests carry the session id and the next epoch and
//! list only partitions whose fetch position changed (plus `forgotten` ones);
//! responses list only partitions with records, an error, or a changed high
//! watermark / log start offset. `epoch = -1` closes the session. The cache holds
//! at most `sessions_max` sessions and evicts the least recently used.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use kafka_protocol::error::ResponseError;

/// Identifies a partition inside a session: topic id (v13+) or name, and index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
}

/// What the client asked for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// What was last sent for one partition, to decide what an incremental response
/// must include.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentState {
    pub high_watermark: i64,
    /// A move of the last stable offset is news for read_committed
    /// consumers, as in Kafka's incremental sessions.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug)]
struct Entry {
    params: FetchParams,
    sent: Option<SentState>,
}

struct Session {
    next_epoch: i32,
    partitions: BTreeMap<SessionKey, Entry>,
    last_used: Instant,
}

/// How a fetch request relates to sessions, decided before reading any data.
#[derive(Debug)]
pub enum SessionPlan {
    /// No session: a full response to exactly the requested partitions.
    Full { session_id: i32 },
    /// An incremental fetch in session `session_id`: consider every partition in
    /// the session; answer only the changed ones.
    Incremental { session_id: i32 },
}

/// The bounded cache of sessions.
pub struct FetchSessionCache {
    sessions_max: usize,
    inner: Mutex<(HashMap<i32, Session>, i32)>,
}

impl FetchSessionCache {
    /// A cache of at most `sessions_max` sessions.
    pub fn new(sessions_max: usize) -> FetchSessionCache {
        FetchSessionCache {
            sessions_max,
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<i32, Session>, i32)> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Applies a request's session fields and partition list. Returns the plan and
    /// the partitions to fetch (for an incremental fetch, the whole session).
    pub fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<(SessionKey, FetchParams)>,
        forgotten: Vec<SessionKey>,
    ) -> Result<(SessionPlan, Vec<(SessionKey, FetchParams)>), ResponseError> {
        let mut guard = self.lock();
        let (sessions, next_id) = &mut *guard;
        match (session_id, epoch) {
            (0, -1) => Ok((SessionPlan::Full { session_id: 0 }, requested)),
            (id, -1) => {
                sessions.remove(&id);
                Ok((SessionPlan::Full { session_id: 0 }, requested))
            }
            (id, 0) => {
                if id != 0 {
                    sessions.remove(&id);
                }
                if self.sessions_max == 0 {
                    return Ok((SessionPlan::Full { session_id: 0 }, requested));
                }
                if sessions.len() >= self.sessions_max {
                    if let Some(oldest) = sessions
                        .iter()
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(k, _)| *k)
                    {
                        sessions.remove(&oldest);
                    }
                }
                let new_id = loop {
                    *next_id = next_id.wrapping_add(1);
                    if *next_id > 0 && !sessions.contains_key(next_id) {
                        break *next_id;
                    }
                };
                let partitions = requested
                    .iter()
                    .map(|(k, p)| {
                        (
                            k.clone(),
                            Entry {
                                params: p.clone(),
                                sent: None,
                            },
                        )
                    })
                    .collect();
                sessions.insert(
                    new_id,
                    Session {
                        next_epoch: 1,
                        partitions,
                        last_used: Instant::now(),
                    },
                );
                Ok((SessionPlan::Full { session_id: new_id }, requested))
            }
            (0, _) => Err(ResponseError::InvalidFetchSessionEpoch),
            (id, epoch) => {
                let session = sessions
                    .get_mut(&id)
                    .ok_or(ResponseError::FetchSessionIdNotFound)?;
                if session.next_epoch != epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = Instant::now();
                for key in forgotten {
                    session.partitions.remove(&key);
                }
                for (key, params) in requested {
                    let entry = session.partitions.entry(key).or_insert(Entry {
                        params: params.clone(),
                        sent: None,
                    });
                    entry.params = params;
                }
                let all = session
                    .partitions
                    .iter()
                    .map(|(k, e)| (k.clone(), e.params.clone()))
                    .collect();
                Ok((SessionPlan::Incremental { session_id: id }, all))
            }
        }
    }

    /// Records what a response carries for `key` and says whether an incremental
    /// response must include it (`has_news`: records or an error).
    pub fn note_sent(
        &self,
        session_id: i32,
        key: &SessionKey,
        state: SentState,
        has_news: bool,
    ) -> bool {
        if session_id == 0 {
            return true;
        }
        let mut guard = self.lock();
        let Some(session) = guard.0.get_mut(&session_id) else {
            return true;
        };
        let Some(entry) = session.partitions.get_mut(key) else {
            return true;
        };
        let changed = entry.sent.as_ref() != Some(&state);
        entry.sent = Some(state);
        has_news || changed
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether no session is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionKey {
        SessionKey {
            topic: "t".into(),
            topic_id: uuid::Uuid::nil(),
            partition: p,
        }
    }

    fn params(offset: i64) -> FetchParams {
        FetchParams {
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        }
    }

    #[test]
    fn session_lifecycle_follows_kip_227() {
        let cache = FetchSessionCache::new(2);
        let (plan, parts) = cache
            .begin(0, 0, vec![(key(0), params(0)), (key(1), params(5))], vec![])
            .unwrap();
        let SessionPlan::Full { session_id } = plan else {
            panic!("new session answers in full")
        };
        assert!(session_id > 0);
        assert_eq!(parts.len(), 2);
        let state = SentState {
            high_watermark: 10,
            last_stable_offset: 10,
            log_start_offset: 0,
        };
        assert!(cache.note_sent(session_id, &key(0), state.clone(), false));
        // Incremental: only partition 1 moved; both are considered.
        let (plan, parts) = cache
            .begin(session_id, 1, vec![(key(1), params(7))], vec![])
            .unwrap();
        assert!(matches!(plan, SessionPlan::Incremental { .. }));
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts
                .iter()
                .find(|(k, _)| *k == key(1))
                .unwrap()
                .1
                .fetch_offset,
            7
        );
        assert!(
            !cache.note_sent(session_id, &key(0), state.clone(), false),
            "unchanged is omitted"
        );
        assert!(
            cache.note_sent(session_id, &key(0), state, true),
            "records are news"
        );
        // Wrong epoch, unknown session.
        assert_eq!(
            cache.begin(session_id, 5, vec![], vec![]).unwrap_err(),
            ResponseError::InvalidFetchSessionEpoch
        );
        assert_eq!(
            cache.begin(4242, 1, vec![], vec![]).unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
        // Forget a partition.
        let (_, parts) = cache.begin(session_id, 2, vec![], vec![key(0)]).unwrap();
        assert_eq!(parts.len(), 1);
        // Close.
        cache.begin(session_id, -1, vec![], vec![]).unwrap();
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let cache = FetchSessionCache::new(2);
        for _ in 0..5 {
            cache
                .begin(0, 0, vec![(key(0), params(0))], vec![])
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
    }
}
