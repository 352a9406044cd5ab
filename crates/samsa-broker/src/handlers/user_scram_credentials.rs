//! DescribeUserScramCredentials (50) and AlterUserScramCredentials (51),
//! KIP-554: SCRAM credentials kept as metadata records
//! ([`samsa_metadata::scram`]), so every broker of the cluster
//! authenticates a user created on any of them.
//!
//! Clients send the salted password (PBKDF2 of the password with the salt
//! and iteration count they chose); the broker keeps only the stored key
//! and server key derived from it (RFC 5802), never the salted password.
//! Errors are Kafka's, per user: RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE,
//! UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use samsa_metadata::quorum::QuorumError;
use samsa_metadata::scram::{
    describe_scram_credentials, ScramAlteration, ScramCredential, ScramError, ScramMechanism,
};
use samsa_metadata::ControllerError;
use samsa_security::sasl::scram::credential_from_salted;

use super::s;
use crate::broker::Broker;

fn code(e: &ScramError) -> i16 {
    match e {
        ScramError::UnsupportedMechanism => ResponseError::UnsupportedSaslMechanism,
        ScramError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        ScramError::Unacceptable(_) => ResponseError::UnacceptableCredential,
        ScramError::Duplicate(_) => ResponseError::DuplicateResource,
    }
    .code()
}

/// Answers DescribeUserScramCredentials v0 from this broker's image.
pub fn describe(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let named: Option<Vec<String>> = request
        .users
        .map(|users| users.iter().map(|u| u.name.to_string()).collect());
    let results = describe_scram_credentials(&broker.image(), named.as_deref())
        .into_iter()
        .map(|(user, result)| {
            let r = DescribeUserScramCredentialsResult::default().with_user(s(user));
            match result {
                Ok(infos) => r.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.wire())
                                .with_iterations(iterations)
                        })
                        .collect(),
                ),
                Err(e) => r
                    .with_error_code(code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// Answers AlterUserScramCredentials v0 through the controller.
pub fn alter(
    broker: &Broker,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut alterations = Vec::new();
    for d in &request.deletions {
        alterations.push(ScramAlteration::Delete {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        });
    }
    for u in &request.upsertions {
        let credential = match ScramMechanism::from_wire(u.mechanism) {
            Some(m) => credential_from_salted(m, &u.salted_password, u.salt.to_vec(), u.iterations),
            // Refused by the plan as UNSUPPORTED_SASL_MECHANISM.
            None => ScramCredential {
                salt: Vec::new(),
                stored_key: Vec::new(),
                server_key: Vec::new(),
                iterations: u.iterations,
            },
        };
        let credential = if u.salted_password.is_empty() {
            // Nothing to derive from: refused as UNACCEPTABLE_CREDENTIAL.
            ScramCredential {
                stored_key: Vec::new(),
                ..credential
            }
        } else {
            credential
        };
        alterations.push(ScramAlteration::Upsert {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            credential,
        });
    }
    let results = match broker.admin(|c| c.alter_scram_credentials(&alterations)) {
        Ok(results) => results
            .into_iter()
            .map(|(user, r)| {
                let out = AlterUserScramCredentialsResult::default().with_user(s(user));
                match r {
                    Ok(()) => out,
                    Err(e) => out
                        .with_error_code(code(&e))
                        .with_error_message(Some(s(e.to_string()))),
                }
            })
            .collect(),
        Err(e) => {
            let error = match &e {
                ControllerError::Quorum(QuorumError::NoLeader(_)) => ResponseError::NotController,
                _ => ResponseError::UnknownServerError,
            };
            let mut users: Vec<String> = Vec::new();
            for a in &alterations {
                let user = match a {
                    ScramAlteration::Delete { user, .. } | ScramAlteration::Upsert { user, .. } => {
                        user
                    }
                };
                if !users.contains(user) {
                    users.push(user.clone());
                }
            }
            users
                .into_iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(s(user))
                        .with_error_code(error.code())
                        .with_error_message(Some(s(e.to_string())))
                })
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}
