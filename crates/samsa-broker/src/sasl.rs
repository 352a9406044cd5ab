//! SASL on a SASL_PLAINTEXT or SASL_SSL connection: the state machine that
//! screens every frame before the request handlers see it, as Kafka's
//! `SaslServerAuthenticator` does.
//!
//! ```text
//! Initial ──ApiVersions──▶ Initial
//! Initial ──SaslHandshake v1 (enabled mechanism)──▶ Exchanging (SaslAuthenticate frames)
//! Initial ──SaslHandshake v0 (enabled mechanism)──▶ Exchanging (raw tokens: size + bytes, no header)
//! Exchanging ──last token accepted──▶ Authenticated (principal User:<name>)
//! Authenticated ──SaslHandshake──▶ Exchanging again (KIP-368 re-authentication;
//!                                  same mechanism and user, else it fails)
//! ```
//!
//! Any other request before authentication closes the connection; an
//! unknown mechanism is answered UNSUPPORTED_SASL_MECHANISM with the enabled
//! list, then the connection is closed; a failed exchange is answered
//! SASL_AUTHENTICATION_FAILED (raw-token exchanges: nothing) after
//! `connection.failed.authentication.delay.ms`, then the connection is
//! closed. With `connections.max.reauth.ms` > 0 the session lasts that long
//! (SaslAuthenticate v1+ tells the client as `session_lifetime_ms`); a
//! request other than SaslHandshake on an expired session closes the
//! connection.
//!
//! Every client message is bounded by `socket.request.max.bytes` (the frame)
//! and by the mechanisms' own limits; nothing is buffered across frames but
//! the exchange's small state.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use samsa_protocol::codec::{encode_response_frame, parse_request, ResponseFrame};
use samsa_security::sasl::{Exchange, ListenerSasl, Mechanism, SaslFailure, Step};
use samsa_security::KafkaPrincipal;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::handlers::s;

/// Where the exchange is.
enum State {
    /// Before SaslHandshake: ApiVersions and SaslHandshake only.
    Initial,
    /// Between SaslHandshake and the exchange's last token.
    Exchanging {
        mechanism: Mechanism,
        exchange: Exchange,
        /// Tokens come as raw frames (SaslHandshake v0), not SaslAuthenticate.
        raw: bool,
    },
    Authenticated,
}

/// The SASL state of one connection.
pub struct Session {
    sasl: Arc<ListenerSasl>,
    state: State,
    /// The authenticated user (kept across re-authentication, which must not change it).
    user: Option<String>,
    /// `User:<user>`, once authenticated.
    principal: Option<Arc<KafkaPrincipal>>,
    mechanism: Option<Mechanism>,
    expires: Option<Instant>,
    reauth_max: Duration,
    failure_delay: Duration,
}

/// What the connection does with a frame.
pub enum Screened {
    /// Not for SASL: parse and handle it as usual.
    Pass(Bytes),
    /// Write this and read the next frame.
    Reply(ResponseFrame),
    /// Write these raw bytes (a size-prefixed token) and read the next frame.
    Raw(Bytes),
    /// Wait `delay`, write `reply` if any, then close the connection.
    Fail {
        reply: Option<ResponseFrame>,
        delay: Duration,
        reason: String,
    },
}

fn close(reason: impl Into<String>) -> Screened {
    Screened::Fail {
        reply: None,
        delay: Duration::ZERO,
        reason: reason.into(),
    }
}

impl Session {
    /// A connection on a SASL listener, not yet authenticated.
    pub fn new(broker: &Broker, sasl: Arc<ListenerSasl>) -> Session {
        let cfg = broker.config();
        let lower = sasl.listener().to_ascii_lowercase();
        let ms = |key: &str, default: i64| {
            cfg.get(&format!("listener.name.{lower}.{key}"))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .or_else(|| cfg.get_i64(key))
                .unwrap_or(default)
                .max(0) as u64
        };
        Session {
            reauth_max: Duration::from_millis(ms("connections.max.reauth.ms", 0)),
            failure_delay: Duration::from_millis(ms(
                "connection.failed.authentication.delay.ms",
                100,
            )),
            sasl,
            state: State::Initial,
            user: None,
            principal: None,
            mechanism: None,
            expires: None,
        }
    }

    /// The authenticated principal (`User:<name>`), once there is one.
    pub fn principal(&self) -> Option<&Arc<KafkaPrincipal>> {
        match self.state {
            State::Authenticated => self.principal.as_ref(),
            _ => None,
        }
    }

    /// Decides what happens to `frame` (a whole request frame without its
    /// size prefix).
    pub fn screen(&mut self, broker: &Broker, frame: Bytes) -> Screened {
        if let State::Exchanging { raw: true, .. } = self.state {
            return self.token(broker, &frame, None);
        }
        let key = frame
            .get(..2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .and_then(|k| ApiKey::try_from(k).ok());
        match (&self.state, key) {
            (State::Initial, Some(ApiKey::ApiVersions)) => Screened::Pass(frame),
            (State::Initial | State::Authenticated, Some(ApiKey::SaslHandshake)) => {
                if matches!(self.state, State::Authenticated) {
                    // Kafka answers SaslHandshake on an authenticated
                    // connection as the start of a re-authentication.
                    self.expires = None;
                }
                self.handshake(frame)
            }
            (State::Exchanging { raw: false, .. }, Some(ApiKey::SaslAuthenticate)) => {
                self.authenticate(broker, frame)
            }
            (State::Authenticated, _) => {
                if self.expires.is_some_and(|e| Instant::now() >= e) {
                    return close("the SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate");
                }
                Screened::Pass(frame)
            }
            (_, key) => close(format!(
                "unexpected request {key:?} during SASL authentication"
            )),
        }
    }

    fn handshake(&mut self, frame: Bytes) -> Screened {
        let request = match parse_request(frame) {
            Ok(r) => r,
            Err(e) => return close(format!("malformed SaslHandshake: {e}")),
        };
        let (version, correlation_id) = (request.version(), request.header.correlation_id);
        let RequestKind::SaslHandshake(r) = request.body else {
            return close("malformed SaslHandshake");
        };
        let enabled = self.sasl.names().into_iter().map(s).collect();
        let reauth = self.user.is_some();
        let chosen = self.sasl.enabled(r.mechanism.as_str()).filter(|m| {
            // Re-authentication keeps the mechanism, and needs
            // SaslAuthenticate frames.
            !reauth || (Some(*m) == self.mechanism && version >= 1)
        });
        let Some(mechanism) = chosen else {
            let body = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            let reason = format!(
                "client asked for SASL mechanism {:?}; enabled: {}",
                r.mechanism.as_str(),
                self.sasl.names().join(",")
            );
            return match response(ApiKey::SaslHandshake, version, correlation_id, body.into()) {
                Ok(reply) => Screened::Fail {
                    reply: Some(reply),
                    delay: Duration::ZERO,
                    reason,
                },
                Err(e) => close(e),
            };
        };
        self.state = State::Exchanging {
            mechanism,
            exchange: Exchange::new(mechanism),
            raw: version == 0,
        };
        let body = SaslHandshakeResponse::default().with_mechanisms(enabled);
        match response(ApiKey::SaslHandshake, version, correlation_id, body.into()) {
            Ok(reply) => Screened::Reply(reply),
            Err(e) => close(e),
        }
    }

    fn authenticate(&mut self, broker: &Broker, frame: Bytes) -> Screened {
        let request = match parse_request(frame) {
            Ok(r) => r,
            Err(e) => return close(format!("malformed SaslAuthenticate: {e}")),
        };
        let (version, correlation_id) = (request.version(), request.header.correlation_id);
        let RequestKind::SaslAuthenticate(r) = request.body else {
            return close("malformed SaslAuthenticate");
        };
        self.token(broker, &r.auth_bytes, Some((version, correlation_id)))
    }

    /// Feeds one client token to the exchange. `framed`: the
    /// SaslAuthenticate version and correlation id; `None` for a raw token.
    fn token(&mut self, broker: &Broker, token: &[u8], framed: Option<(i16, i32)>) -> Screened {
        let State::Exchanging {
            mechanism,
            exchange,
            ..
        } = &mut self.state
        else {
            return close("SASL token outside an exchange");
        };
        let mechanism = *mechanism;
        let image = broker.image();
        let stepped = exchange.step(&self.sasl, token, |user| match mechanism {
            Mechanism::Scram(m) => image.scram_credential(user, m).cloned(),
            Mechanism::Plain => None,
        });
        let stepped = match stepped {
            Ok(Step::Done { user, .. })
                if self.user.as_ref().is_some_and(|before| *before != user) =>
            {
                Err(SaslFailure::Credentials(
                    "Cannot change principals during re-authentication".into(),
                ))
            }
            other => other,
        };
        let (bytes, done) = match stepped {
            Ok(Step::Continue(b)) => (b, None),
            Ok(Step::Done { user, response }) => (response, Some(user)),
            Err(failure) => return self.failed(framed, mechanism, failure),
        };
        let mut lifetime_ms = 0i64;
        if let Some(user) = done {
            tracing::debug!(listener = self.sasl.listener(), %user, mechanism = mechanism.name(), "SASL authenticated");
            if self.principal.is_none() {
                self.principal = Some(Arc::new(KafkaPrincipal::user(user.clone())));
            }
            self.user = Some(user);
            self.mechanism = Some(mechanism);
            self.state = State::Authenticated;
            if !self.reauth_max.is_zero() {
                self.expires = Some(Instant::now() + self.reauth_max);
                lifetime_ms = i64::try_from(self.reauth_max.as_millis()).unwrap_or(i64::MAX);
            }
        }
        let Some((version, correlation_id)) = framed else {
            let mut raw = BytesMut::with_capacity(4 + bytes.len());
            raw.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
            raw.put_slice(&bytes);
            return Screened::Raw(raw.freeze());
        };
        let body = SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(bytes))
            .with_session_lifetime_ms(lifetime_ms);
        match response(
            ApiKey::SaslAuthenticate,
            version,
            correlation_id,
            body.into(),
        ) {
            Ok(reply) => Screened::Reply(reply),
            Err(e) => close(e),
        }
    }

    /// The answer to a failed exchange: SASL_AUTHENTICATION_FAILED with the
    /// reason (raw tokens: nothing), after the failure delay, then close.
    fn failed(
        &mut self,
        framed: Option<(i16, i32)>,
        mechanism: Mechanism,
        failure: SaslFailure,
    ) -> Screened {
        self.state = State::Initial;
        self.user = None;
        self.principal = None;
        let reason = format!("SASL {} authentication failed: {failure}", mechanism.name());
        tracing::info!(listener = self.sasl.listener(), %reason);
        let reply = framed.and_then(|(version, correlation_id)| {
            let body = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(s(failure.to_string())));
            response(
                ApiKey::SaslAuthenticate,
                version,
                correlation_id,
                body.into(),
            )
            .ok()
        });
        Screened::Fail {
            reply,
            delay: self.failure_delay,
            reason,
        }
    }
}

fn response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: ResponseKind,
) -> Result<ResponseFrame, String> {
    encode_response_frame(api_key, version, correlation_id, &body).map_err(|e| e.to_string())
}
