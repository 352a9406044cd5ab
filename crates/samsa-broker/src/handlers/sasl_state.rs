//! SaslHandshake and SaslAuthenticate where no SASL exchange is expected: on
//! a PLAINTEXT or SSL listener, or a SaslAuthenticate on an already
//! authenticated SASL connection. Kafka answers both ILLEGAL_SASL_STATE.
//! (On SASL listeners the exchange itself is answered by [`crate::sasl`]
//! before requests reach the handlers.)

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

use super::s;

/// SaslHandshake outside a SASL exchange.
pub fn handshake() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// SaslAuthenticate outside a SASL exchange.
pub fn authenticate() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(s(
            "SaslAuthenticate request received after successful authentication",
        )))
}
