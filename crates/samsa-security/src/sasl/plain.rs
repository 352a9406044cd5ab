//! SASL PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL passwd`,
//! checked against the listener's JAAS users. The password comparison takes
//! the same time whatever the stored password, and an unknown user is
//! compared against a dummy, so timing does not tell which users exist.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

use super::SaslFailure;

/// Longest PLAIN message accepted, in bytes.
pub const PLAIN_MESSAGE_BYTES_MAX: usize = 4096;

const FAILED: &str = "Authentication failed: Invalid username or password";

/// The user `message` authenticates, or why it does not.
pub fn authenticate(
    users: &BTreeMap<String, String>,
    message: &[u8],
) -> Result<String, SaslFailure> {
    if message.len() > PLAIN_MESSAGE_BYTES_MAX {
        return Err(SaslFailure::Invalid(
            "Invalid SASL/PLAIN response: too long".into(),
        ));
    }
    let text = std::str::from_utf8(message)
        .map_err(|_| SaslFailure::Invalid("Invalid SASL/PLAIN response: not UTF-8".into()))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::Invalid(
            "Invalid SASL/PLAIN response: expected 3 tokens".into(),
        ));
    };
    if user.is_empty() {
        return Err(SaslFailure::Invalid(
            "Authentication failed: username not specified".into(),
        ));
    }
    if password.is_empty() {
        return Err(SaslFailure::Invalid(
            "Authentication failed: password not specified".into(),
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslFailure::Credentials(
            "Authentication failed: Client requested an authorization id that is different from username".into(),
        ));
    }
    let (expected, known) = match users.get(user) {
        Some(p) => (p.as_bytes(), true),
        None => (password.as_bytes(), false),
    };
    // `ct_eq` on slices of different lengths returns false at once; the
    // length of a password is not the secret worth protecting here.
    let equal: bool = expected.ct_eq(password.as_bytes()).into();
    if equal && known {
        Ok(user.to_owned())
    } else {
        Err(SaslFailure::Credentials(FAILED.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_password_authenticates() {
        let users = BTreeMap::from([("alice".to_owned(), "alice-secret".to_owned())]);
        assert_eq!(
            authenticate(&users, b"\0alice\0alice-secret"),
            Ok("alice".into())
        );
        assert_eq!(
            authenticate(&users, b"alice\0alice\0alice-secret"),
            Ok("alice".into())
        );
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0mallory\0alice-secret",
            b"bob\0alice\0alice-secret",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"\0alice\0alice-secret\0extra",
            b"\0alice\0\xff",
        ] {
            assert!(authenticate(&users, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            authenticate(&users, b"\0alice\0wrong"),
            Err(SaslFailure::Credentials(FAILED.into()))
        );
    }
}
