//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554):
//! SCRAM users. The caller salts the password (PBKDF2); only the salt,
//! iteration count and salted password go over the wire, as Kafka's admin
//! client sends them.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{opt_string, Admin};
use crate::error::ClientError;

/// One user's SCRAM credentials: (mechanism wire number, iterations) each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramUser {
    pub user: String,
    pub credentials: Vec<(i8, i32)>,
}

/// A credential to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// Each user's outcome of an alteration.
pub type ScramResults = Vec<(String, Result<(), ClientError>)>;

impl Admin {
    /// The SCRAM credentials of `users` (all users when `None`); a named
    /// user without any is an error in its entry.
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[String]>,
    ) -> Result<Vec<Result<ScramUser, (String, ClientError)>>, ClientError> {
        let named = users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(StrBytes::from_string(n.clone())))
                .collect::<Vec<_>>()
        });
        let (resp, _) = self
            .client
            .send_any(ApiKey::DescribeUserScramCredentials, |_| {
                DescribeUserScramCredentialsRequest::default().with_users(named.clone())
            })
            .await?;
        ClientError::check(
            resp.error_code,
            opt_string(&resp.error_message),
            "DescribeUserScramCredentials",
        )?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                match ClientError::check(
                    r.error_code,
                    opt_string(&r.error_message),
                    "DescribeUserScramCredentials",
                ) {
                    Err(e) => Err((user, e)),
                    Ok(()) => Ok(ScramUser {
                        user,
                        credentials: r
                            .credential_infos
                            .iter()
                            .map(|c| (c.mechanism, c.iterations))
                            .collect(),
                    }),
                }
            })
            .collect())
    }

    /// Sets `upsertions` and deletes `deletions` (user, mechanism); each
    /// user's result.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: &[ScramUpsertion],
        deletions: &[(String, i8)],
    ) -> Result<ScramResults, ClientError> {
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(StrBytes::from_string(u.user.clone()))
                            .with_mechanism(u.mechanism)
                            .with_iterations(u.iterations)
                            .with_salt(Bytes::from(u.salt.clone()))
                            .with_salted_password(Bytes::from(u.salted_password.clone()))
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|(user, mechanism)| {
                        ScramCredentialDeletion::default()
                            .with_name(StrBytes::from_string(user.clone()))
                            .with_mechanism(*mechanism)
                    })
                    .collect(),
            );
        let (resp, _) = self
            .client
            .send_any(ApiKey::AlterUserScramCredentials, |_| request.clone())
            .await?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    ClientError::check(
                        r.error_code,
                        opt_string(&r.error_message),
                        "AlterUserScramCredentials",
                    ),
                )
            })
            .collect())
    }
}
