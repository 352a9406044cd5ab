//! SCRAM credentials as cluster metadata (Kafka's `UserScramCredentialRecord`
//! and `RemoveUserScramCredentialRecord`, KIP-554): per user and mechanism the
//! salt, stored key, server key and iteration count — never the password —
//! replicated with the metadata log, and the planning of
//! AlterUserScramCredentials and DescribeUserScramCredentials against the image.
//!
//! Kafka's rules: 4096 to 16384 iterations; a user may be altered once per
//! mechanism in one request (else DUPLICATE_RESOURCE); deleting a credential
//! that does not exist is RESOURCE_NOT_FOUND; an unknown mechanism is
//! UNSUPPORTED_SASL_MECHANISM. A user whose alterations contain one error
//! keeps all its credentials as they were; other users' alterations apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::plan::Planned;
use crate::record::MetadataRecord;

/// A SCRAM mechanism, by Kafka's wire number (`ScramMechanism`: 1 and 2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, in wire-number order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The mechanism with wire number `n` (Kafka: 0 is UNKNOWN).
    pub fn from_wire(n: i8) -> Option<ScramMechanism> {
        match n {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// Kafka's wire number.
    pub fn wire(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// Fewest PBKDF2 iterations a credential may have (Kafka's `minIterations`).
pub const SCRAM_ITERATIONS_MIN: i32 = 4096;
/// Most PBKDF2 iterations a credential may have (Kafka's `maxIterations`).
pub const SCRAM_ITERATIONS_MAX: i32 = 16384;
/// Longest salt or key accepted from a client, in bytes (SHA-512 keys are 64).
pub const SCRAM_FIELD_BYTES_MAX: usize = 1024;

/// What the broker keeps of a SCRAM password (RFC 5802 section 3):
/// `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
/// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// One change of an AlterUserScramCredentials request. The mechanism is the
/// raw wire number, so an unknown one is answered per user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramAlteration {
    Delete {
        user: String,
        mechanism: i8,
    },
    Upsert {
        user: String,
        mechanism: i8,
        credential: ScramCredential,
    },
}

impl ScramAlteration {
    fn user(&self) -> &str {
        match self {
            ScramAlteration::Delete { user, .. } | ScramAlteration::Upsert { user, .. } => user,
        }
    }

    fn mechanism(&self) -> i8 {
        match self {
            ScramAlteration::Delete { mechanism, .. }
            | ScramAlteration::Upsert { mechanism, .. } => *mechanism,
        }
    }
}

/// Why a user's SCRAM alteration or description was refused (Kafka's error
/// and message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("Unknown SCRAM mechanism")]
    UnsupportedMechanism,
    #[error("{0}")]
    ResourceNotFound(&'static str),
    #[error("{0}")]
    Unacceptable(&'static str),
    #[error("{0}")]
    Duplicate(&'static str),
}

/// Each user's outcome, in the order users first appear in the request.
pub type UserResults = Vec<(String, Result<(), ScramError>)>;

/// Plans AlterUserScramCredentials: the records of every user whose
/// alterations are all valid, and each user's result.
pub fn plan_alter_scram_credentials(
    image: &MetadataImage,
    alterations: &[ScramAlteration],
) -> Planned<UserResults> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_user: BTreeMap<&str, Vec<&ScramAlteration>> = BTreeMap::new();
    for a in alterations {
        if !by_user.contains_key(a.user()) {
            order.push(a.user());
        }
        by_user.entry(a.user()).or_default().push(a);
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(order.len());
    for user in order {
        let mine = by_user.get(user).map(Vec::as_slice).unwrap_or_default();
        match user_records(image, user, mine) {
            Ok(mut r) => {
                records.append(&mut r);
                results.push((user.to_owned(), Ok(())));
            }
            Err(e) => results.push((user.to_owned(), Err(e))),
        }
    }
    Planned::new(records, results)
}

/// The records of one user's alterations, or the first error among them.
fn user_records(
    image: &MetadataImage,
    user: &str,
    alterations: &[&ScramAlteration],
) -> Result<Vec<MetadataRecord>, ScramError> {
    if user.is_empty() {
        return Err(ScramError::Unacceptable("Username must not be empty"));
    }
    let mut seen = Vec::new();
    for a in alterations {
        if seen.contains(&a.mechanism()) {
            return Err(ScramError::Duplicate(
                "A user credential cannot be altered twice in the same request",
            ));
        }
        seen.push(a.mechanism());
    }
    let mut records = Vec::new();
    for a in alterations {
        let mechanism =
            ScramMechanism::from_wire(a.mechanism()).ok_or(ScramError::UnsupportedMechanism)?;
        match a {
            ScramAlteration::Delete { .. } => {
                if image.scram_credential(user, mechanism).is_none() {
                    return Err(ScramError::ResourceNotFound(
                        "Attempt to delete a user credential that does not exist",
                    ));
                }
                records.push(MetadataRecord::RemoveUserScramCredential {
                    name: user.to_owned(),
                    mechanism,
                });
            }
            ScramAlteration::Upsert { credential, .. } => {
                check_credential(credential)?;
                records.push(MetadataRecord::UserScramCredential {
                    name: user.to_owned(),
                    mechanism,
                    credential: credential.clone(),
                });
            }
        }
    }
    Ok(records)
}

fn check_credential(c: &ScramCredential) -> Result<(), ScramError> {
    if c.iterations < SCRAM_ITERATIONS_MIN {
        return Err(ScramError::Unacceptable("Too few iterations"));
    }
    if c.iterations > SCRAM_ITERATIONS_MAX {
        return Err(ScramError::Unacceptable("Too many iterations"));
    }
    let empty = c.salt.is_empty() || c.stored_key.is_empty() || c.server_key.is_empty();
    let long = [&c.salt, &c.stored_key, &c.server_key]
        .iter()
        .any(|f| f.len() > SCRAM_FIELD_BYTES_MAX);
    if empty || long {
        return Err(ScramError::Unacceptable(
            "The salt and salted password must be non-empty and at most 1024 bytes",
        ));
    }
    Ok(())
}

/// One described user: its mechanisms and iteration counts.
pub type UserCredentials = Vec<(ScramMechanism, i32)>;

/// DescribeUserScramCredentials: every user with a credential when `users`
/// is `None` or empty; else each named user's credentials, RESOURCE_NOT_FOUND
/// for one without any and DUPLICATE_RESOURCE for one named twice.
pub fn describe_scram_credentials(
    image: &MetadataImage,
    users: Option<&[String]>,
) -> Vec<(String, Result<UserCredentials, ScramError>)> {
    let describe = |user: &str| -> UserCredentials {
        image
            .scram_credentials
            .get(user)
            .map(|m| m.iter().map(|(mech, c)| (*mech, c.iterations)).collect())
            .unwrap_or_default()
    };
    match users {
        None | Some([]) => image
            .scram_credentials
            .keys()
            .map(|u| (u.clone(), Ok(describe(u))))
            .collect(),
        Some(named) => {
            let mut times: std::collections::HashMap<&str, usize> =
                std::collections::HashMap::new();
            for u in named {
                *times.entry(u.as_str()).or_default() += 1;
            }
            named
            .iter()
            .map(|u| {
                let result = if times.get(u.as_str()).copied().unwrap_or(0) > 1 {
                    Err(ScramError::Duplicate(
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    ))
                } else {
                    Some(describe(u)).filter(|c| !c.is_empty()).ok_or(
                        ScramError::ResourceNotFound(
                            "Attempt to describe a user credential that does not exist",
                        ),
                    )
                };
                (u.clone(), result)
            })
            .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(iterations: i32) -> ScramCredential {
        ScramCredential {
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations,
        }
    }

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramAlteration {
        ScramAlteration::Upsert {
            user: user.into(),
            mechanism,
            credential: credential(iterations),
        }
    }

    fn run(image: &mut MetadataImage, alterations: &[ScramAlteration]) -> UserResults {
        let planned = plan_alter_scram_credentials(image, alterations);
        for r in &planned.records {
            image.apply(r);
        }
        planned.outcome
    }

    #[test]
    fn alterations_apply_per_user_with_kafkas_errors() {
        let mut image = MetadataImage::default();
        let results = run(
            &mut image,
            &[
                upsert("alice", 1, 4096),
                upsert("alice", 2, 8192),
                upsert("bob", 1, 100),
                upsert("carol", 7, 4096),
                upsert("dave", 1, 4096),
                ScramAlteration::Delete {
                    user: "dave".into(),
                    mechanism: 1,
                },
                ScramAlteration::Delete {
                    user: "erin".into(),
                    mechanism: 1,
                },
                upsert("", 1, 4096),
                upsert("frank", 1, 20000),
            ],
        );
        let errors: Vec<_> = results
            .iter()
            .map(|(u, r)| (u.as_str(), r.clone()))
            .collect();
        assert_eq!(
            errors,
            [
                ("alice", Ok(())),
                ("bob", Err(ScramError::Unacceptable("Too few iterations"))),
                ("carol", Err(ScramError::UnsupportedMechanism)),
                (
                    "dave",
                    Err(ScramError::Duplicate(
                        "A user credential cannot be altered twice in the same request"
                    ))
                ),
                (
                    "erin",
                    Err(ScramError::ResourceNotFound(
                        "Attempt to delete a user credential that does not exist"
                    ))
                ),
                (
                    "",
                    Err(ScramError::Unacceptable("Username must not be empty"))
                ),
                (
                    "frank",
                    Err(ScramError::Unacceptable("Too many iterations"))
                ),
            ]
        );
        // Only alice's two credentials were written.
        assert_eq!(
            describe_scram_credentials(&image, None),
            [(
                "alice".to_owned(),
                Ok(vec![
                    (ScramMechanism::Sha256, 4096),
                    (ScramMechanism::Sha512, 8192)
                ])
            )]
        );
        // A deletion removes one mechanism; the last one removes the user.
        run(
            &mut image,
            &[ScramAlteration::Delete {
                user: "alice".into(),
                mechanism: 1,
            }],
        );
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha512),
            Some(&credential(8192))
        );
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            None
        );
        run(
            &mut image,
            &[ScramAlteration::Delete {
                user: "alice".into(),
                mechanism: 2,
            }],
        );
        assert!(image.scram_credentials.is_empty());
    }

    #[test]
    fn credentials_are_replayed_from_the_metadata_log_on_reopen() {
        use crate::config::StaticConfig;
        use crate::controller::Controller;
        use crate::quorum::LocalQuorum;
        use std::sync::Arc;

        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            let (q, records) = LocalQuorum::open(dir.path()).expect("log");
            Controller::open(Box::new(q), records, Arc::new(StaticConfig::default()))
                .expect("controller")
        };
        {
            let c = open();
            let results = c
                .alter_scram_credentials(&[upsert("alice", 1, 4096), upsert("bob", 2, 8192)])
                .expect("committed");
            assert!(results.iter().all(|(_, r)| r.is_ok()));
            c.alter_scram_credentials(&[ScramAlteration::Delete {
                user: "bob".into(),
                mechanism: 2,
            }])
            .expect("committed");
        }
        let c = open();
        let image = c.image();
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            Some(&credential(4096))
        );
        assert!(!image.scram_credentials.contains_key("bob"));
    }

    #[test]
    fn describe_names_missing_and_duplicate_users() {
        let mut image = MetadataImage::default();
        run(&mut image, &[upsert("alice", 1, 4096)]);
        let named = ["alice", "nobody", "twice", "twice"].map(String::from);
        let got = describe_scram_credentials(&image, Some(&named));
        assert_eq!(got[0].1, Ok(vec![(ScramMechanism::Sha256, 4096)]));
        assert!(matches!(got[1].1, Err(ScramError::ResourceNotFound(_))));
        assert!(matches!(got[2].1, Err(ScramError::Duplicate(_))));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn records_round_trip_as_json_without_the_password() {
        let r = MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: credential(4096),
        };
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("SCRAM-SHA-512"), "{json}");
        assert_eq!(serde_json::from_str::<MetadataRecord>(&json).ok(), Some(r));
        let r = MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha256,
        };
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(serde_json::from_str::<MetadataRecord>(&json).ok(), Some(r));
    }
}
