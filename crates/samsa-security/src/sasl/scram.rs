//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks
//! them: no channel binding (`n,,` or `n,a=<authzid>,`), an authorization id
//! only when equal to the user name, no extensions but an unset
//! `tokenauth` (delegation tokens are not implemented). The server never
//! sees or keeps the password: only the credential (salt, stored key, server
//! key, iterations) from the metadata image.
//!
//! Exchange (each line one SaslAuthenticate token):
//!
//! ```text
//! C: n,,n=<user>,r=<client nonce>
//! S: r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
//! C: c=biws,r=<client nonce><server nonce>,p=<base64 ClientProof>
//! S: v=<base64 ServerSignature>
//! ```
//!
//! A user without a credential gets a server-first message with a made-up
//! salt and fails at the proof, like a wrong password: the exchange does not
//! tell which user names exist.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use samsa_metadata::scram::{ScramCredential, ScramMechanism, SCRAM_ITERATIONS_MIN};
use subtle::ConstantTimeEq;

use super::SaslFailure;

/// Longest SCRAM message accepted from a client, in bytes.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;
/// Random bytes in the server's part of the nonce (base64: 32 characters).
const SERVER_NONCE_BYTES: usize = 24;

fn hmac_alg(m: ScramMechanism) -> hmac::Algorithm {
    match m {
        ScramMechanism::Sha256 => hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => hmac::HMAC_SHA512,
    }
}

fn digest_alg(m: ScramMechanism) -> &'static digest::Algorithm {
    match m {
        ScramMechanism::Sha256 => &digest::SHA256,
        ScramMechanism::Sha512 => &digest::SHA512,
    }
}

fn hmac_of(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac_alg(m), key), data)
        .as_ref()
        .to_vec()
}

/// `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    m: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
    };
    let mut out = vec![0u8; digest_alg(m).output_len()];
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(alg, rounds, salt, password, &mut out);
    out
}

/// The credential of a salted password (what AlterUserScramCredentials
/// carries: clients salt the password themselves).
pub fn credential_from_salted(
    m: ScramMechanism,
    salted: &[u8],
    salt: Vec<u8>,
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac_of(m, salted, b"Client Key");
    ScramCredential {
        salt,
        stored_key: digest::digest(digest_alg(m), &client_key).as_ref().to_vec(),
        server_key: hmac_of(m, salted, b"Server Key"),
        iterations,
    }
}

/// `count` random bytes from the system's secure generator.
pub fn random_bytes(count: usize) -> Result<Vec<u8>, SaslFailure> {
    let mut out = vec![0u8; count];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| SaslFailure::Internal("the system random generator failed".into()))?;
    Ok(out)
}

/// The salt offered to a user without a credential: HMAC-SHA-256 of the
/// mechanism and name under a key drawn once per process. A fresh random
/// salt per attempt would tell a client that asks twice that the user does
/// not exist (a real user's salt never changes); a salt derived from
/// nothing secret would tell it too.
fn unknown_user_salt(mechanism: ScramMechanism, user: &str) -> Result<Vec<u8>, SaslFailure> {
    static KEY: std::sync::OnceLock<Option<hmac::Key>> = std::sync::OnceLock::new();
    let key = KEY
        .get_or_init(|| {
            random_bytes(32)
                .ok()
                .map(|k| hmac::Key::new(hmac::HMAC_SHA256, &k))
        })
        .as_ref()
        .ok_or_else(|| SaslFailure::Internal("the system random generator failed".into()))?;
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(mechanism.name().as_bytes());
    ctx.update(&[0]);
    ctx.update(user.as_bytes());
    Ok(ctx.sign().as_ref().to_vec())
}

/// A fresh random salt of 32 bytes, as `samsa users create` and Kafka's
/// tools use.
pub fn new_salt() -> Result<Vec<u8>, SaslFailure> {
    random_bytes(32)
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`).
fn decode_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i)?);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = rest.get(i + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a user name as a SCRAM `saslname`.
pub fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn invalid(what: &str) -> SaslFailure {
    SaslFailure::Invalid(format!("Invalid SCRAM {what}"))
}

/// The `k=value` attribute `key` of a comma-separated SCRAM message.
fn attribute<'a>(parts: &[&'a str], key: char) -> Option<&'a str> {
    parts.iter().find_map(|p| {
        let mut c = p.chars();
        (c.next() == Some(key) && c.next() == Some('=')).then(|| p.get(2..).unwrap_or_default())
    })
}

/// A printable nonce: no `,` and no control characters (RFC 5802 `printable`).
fn printable(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

enum State {
    First,
    Final {
        user: String,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
        credential: Option<ScramCredential>,
    },
    Done,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// The server's nonce part; `None`: random.
    fixed_nonce: Option<String>,
}

/// What a step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this to the client and wait for its next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send this last message.
    Done { user: String, response: Vec<u8> },
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::First,
            fixed_nonce: None,
        }
    }

    /// An exchange whose server nonce part is `nonce` (test vectors).
    pub fn with_nonce(mechanism: ScramMechanism, nonce: &str) -> ScramServer {
        ScramServer {
            fixed_nonce: Some(nonce.to_owned()),
            ..ScramServer::new(mechanism)
        }
    }

    /// Takes the client's next message; `credential` looks a user's
    /// credential up (called once, on the first message).
    pub fn step(
        &mut self,
        message: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, SaslFailure> {
        if message.len() > SCRAM_MESSAGE_BYTES_MAX {
            return Err(invalid("message: too long"));
        }
        let text = std::str::from_utf8(message).map_err(|_| invalid("message: not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => self.client_first(text, credential),
            State::Final {
                user,
                gs2_header,
                nonce,
                client_first_bare,
                server_first,
                credential,
            } => {
                let auth = Auth {
                    gs2_header: &gs2_header,
                    nonce: &nonce,
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                };
                let response = self.client_final(text, &auth, credential.as_ref())?;
                Ok(ScramStep::Done { user, response })
            }
            State::Done => Err(SaslFailure::Invalid(
                "SCRAM exchange already complete".into(),
            )),
        }
    }

    fn client_first(
        &mut self,
        text: &str,
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, SaslFailure> {
        // gs2-header: "n," or "y," then an optional "a=authzid" then ",".
        let (cbind, rest) = text
            .split_once(',')
            .ok_or_else(|| invalid("client first message"))?;
        if cbind != "n" && cbind != "y" {
            return Err(SaslFailure::Invalid(
                "SCRAM channel binding is not supported".into(),
            ));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| invalid("client first message"))?;
        let gs2_header = format!("{cbind},{authzid},");
        let parts: Vec<&str> = bare.split(',').collect();
        let (Some(name), Some(client_nonce)) = (
            parts.first().and_then(|p| p.strip_prefix("n=")),
            parts.get(1).and_then(|p| p.strip_prefix("r=")),
        ) else {
            return Err(invalid("client first message"));
        };
        let user = decode_name(name)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("user name"))?;
        if !printable(client_nonce) {
            return Err(invalid("nonce"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_name(authzid).as_deref() != Some(user.as_str()) {
                return Err(SaslFailure::Credentials(
                    "Authentication failed: Client requested an authorization id that is different from username".into(),
                ));
            }
        } else if !authzid.is_empty() {
            return Err(invalid("client first message"));
        }
        // Extensions: only Kafka's tokenauth=false is understood.
        for ext in parts.iter().skip(2) {
            if *ext != "tokenauth=false" {
                return Err(SaslFailure::Invalid(format!(
                    "SCRAM extension {ext:?} is not supported"
                )));
            }
        }
        let server_part = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => B64.encode(random_bytes(SERVER_NONCE_BYTES)?),
        };
        let nonce = format!("{client_nonce}{server_part}");
        let credential = credential(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            // Unknown user: fails later like a wrong password, with a salt
            // that stays the same on every attempt (see `unknown_user_salt`).
            None => (
                unknown_user_salt(self.mechanism, &user)?,
                SCRAM_ITERATIONS_MIN,
            ),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        let response = server_first.clone().into_bytes();
        self.state = State::Final {
            user,
            gs2_header,
            nonce,
            client_first_bare: bare.to_owned(),
            server_first,
            credential,
        };
        Ok(ScramStep::Continue(response))
    }

    fn client_final(
        &self,
        text: &str,
        auth: &Auth<'_>,
        credential: Option<&ScramCredential>,
    ) -> Result<Vec<u8>, SaslFailure> {
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| invalid("client final message"))?;
        let parts: Vec<&str> = without_proof.split(',').collect();
        let binding = attribute(&parts, 'c').ok_or_else(|| invalid("client final message"))?;
        if binding != B64.encode(auth.gs2_header.as_bytes()) {
            return Err(invalid("channel binding"));
        }
        // Kafka accepts a final nonce that ends with the combined one
        // (`endsWith`): librdkafka before 2.x repeats the client nonce in
        // front. The proof signs the message as sent either way.
        if !attribute(&parts, 'r').is_some_and(|r| r.ends_with(auth.nonce)) {
            return Err(invalid("nonce"));
        }
        let proof = B64.decode(proof).map_err(|_| invalid("client proof"))?;
        let m = self.mechanism;
        let auth_message = format!(
            "{},{},{without_proof}",
            auth.client_first_bare, auth.server_first
        );
        let failed = || {
            SaslFailure::Credentials(format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                m.name()
            ))
        };
        let credential = credential.ok_or_else(failed)?;
        let signature = hmac_of(m, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let stored = digest::digest(digest_alg(m), &client_key);
        if !bool::from(stored.as_ref().ct_eq(&credential.stored_key)) {
            return Err(failed());
        }
        let server_signature = hmac_of(m, &credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The parts of the exchange the final proof signs.
struct Auth<'a> {
    gs2_header: &'a str,
    nonce: &'a str,
    client_first_bare: &'a str,
    server_first: &'a str,
}

/// The client side of a SCRAM exchange (tests and tools).
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A client for `user`/`password` with the client nonce `nonce`.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            mechanism,
            user: user.to_owned(),
            password: password.to_owned(),
            nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={nonce}", encode_name(user)),
            server_signature: None,
        }
    }

    /// The first message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The final message, answering the server's first one.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        let text = std::str::from_utf8(server_first).map_err(|_| invalid("server message"))?;
        let parts: Vec<&str> = text.split(',').collect();
        let nonce = attribute(&parts, 'r').filter(|n| n.starts_with(&self.nonce));
        let salt = attribute(&parts, 's').and_then(|s| B64.decode(s).ok());
        let iterations = attribute(&parts, 'i').and_then(|i| i.parse::<u32>().ok());
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(invalid("server first message"));
        };
        let m = self.mechanism;
        let salted = salted_password(m, self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = hmac_of(m, &salted, b"Client Key");
        let stored_key = digest::digest(digest_alg(m), &client_key);
        let signature = hmac_of(m, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac_of(m, &salted, b"Server Key");
        self.server_signature = Some(hmac_of(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Whether the server's final message proves it knows the credential.
    pub fn verify(&self, server_final: &[u8]) -> bool {
        let expected = self
            .server_signature
            .as_ref()
            .map(|s| format!("v={}", B64.encode(s)));
        expected.is_some_and(|e| e.as_bytes() == server_final)
    }

    /// The user this client authenticates as.
    pub fn user(&self) -> &str {
        &self.user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_test_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = salted_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let credential = credential_from_salted(ScramMechanism::Sha256, &salted, salt, 4096);
        let mut server =
            ScramServer::with_nonce(ScramMechanism::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let first = server
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| {
                (u == "user").then(|| credential.clone())
            })
            .expect("first");
        assert_eq!(
            first,
            ScramStep::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let last = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                |_| None,
            )
            .expect("final");
        assert_eq!(
            last,
            ScramStep::Done {
                user: "user".into(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
    }

    fn exchange(
        m: ScramMechanism,
        stored: &ScramCredential,
        user: &str,
        password: &str,
    ) -> Result<ScramStep, SaslFailure> {
        let mut server = ScramServer::new(m);
        let mut client = ScramClient::new(m, user, password, "clientnonce123");
        let first =
            match server.step(&client.first(), |u| (u == "alice").then(|| stored.clone()))? {
                ScramStep::Continue(b) => b,
                other => panic!("{other:?}"),
            };
        let last = client.last(&first)?;
        let done = server.step(&last, |_| None)?;
        if let ScramStep::Done { response, .. } = &done {
            assert!(client.verify(response), "the server proves its key");
        }
        Ok(done)
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_others() {
        for m in ScramMechanism::ALL {
            let salt = new_salt().expect("salt");
            let salted = salted_password(m, b"alice-secret", &salt, 4096);
            let stored = credential_from_salted(m, &salted, salt, 4096);
            assert!(matches!(
                exchange(m, &stored, "alice", "alice-secret"),
                Ok(ScramStep::Done { user, .. }) if user == "alice"
            ));
            let wrong = exchange(m, &stored, "alice", "guess");
            assert!(
                matches!(&wrong, Err(SaslFailure::Credentials(msg)) if msg.contains(m.name())),
                "{wrong:?}"
            );
            // An unknown user fails at the same step, with the same error.
            let unknown = exchange(m, &stored, "mallory", "alice-secret");
            assert_eq!(format!("{unknown:?}"), format!("{wrong:?}"));
        }
    }

    /// Asking twice for an unknown user's salt gives the same one, as for a
    /// real user (a fresh salt per attempt told the client "no such user").
    #[test]
    fn an_unknown_users_salt_does_not_change_between_attempts() {
        let salt_of = |m, user: &str| {
            let mut server = ScramServer::new(m);
            let client = ScramClient::new(m, user, "pw", "clientnonce");
            let ScramStep::Continue(first) = server.step(&client.first(), |_| None).expect("first")
            else {
                panic!("no server-first")
            };
            let text = String::from_utf8(first).expect("utf-8");
            text.split(',')
                .find_map(|f| f.strip_prefix("s=").map(str::to_string))
                .expect("salt")
        };
        for m in ScramMechanism::ALL {
            assert_eq!(salt_of(m, "mallory"), salt_of(m, "mallory"));
            assert_ne!(salt_of(m, "mallory"), salt_of(m, "trudy"));
        }
    }

    #[test]
    fn tampered_messages_are_refused() {
        let m = ScramMechanism::Sha256;
        let salt = new_salt().expect("salt");
        let salted = salted_password(m, b"pw", &salt, 4096);
        let stored = credential_from_salted(m, &salted, salt, 4096);
        let lookup = |_: &str| Some(stored.clone());
        for bad_first in [
            &b"p=tls-unique,,n=alice,r=abc"[..],
            b"n,,n=alice",
            b"n,,n=,r=abc",
            b"n,,n=al=ZZice,r=abc",
            b"n,a=bob,n=alice,r=abc",
            b"n,,n=alice,r=abc,tokenauth=true",
            b"garbage",
        ] {
            let mut server = ScramServer::new(m);
            assert!(server.step(bad_first, lookup).is_err(), "{bad_first:?}");
        }
        // A final message with another nonce or binding fails.
        let mut client = ScramClient::new(m, "alice", "pw", "abc");
        for tamper in [("r=abc", "r=xyz"), ("c=biws", "c=eSws"), (",p=", "x,p=")] {
            let mut server = ScramServer::new(m);
            let ScramStep::Continue(first) = server.step(&client.first(), lookup).expect("first")
            else {
                panic!("first step continues");
            };
            let last = String::from_utf8(client.last(&first).expect("last")).expect("utf8");
            let bad = last.replacen(tamper.0, tamper.1, 1);
            assert!(server.step(bad.as_bytes(), lookup).is_err(), "{bad}");
        }
        assert_eq!(decode_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(encode_name("a,b=c"), "a=2Cb=3Dc");
    }
}
