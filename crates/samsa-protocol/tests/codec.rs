//! Request parsing end to end: header, version checks, guard, decode.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use samsa_protocol::codec::{api_versions_unsupported, parse_request, ParseError};

fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(42);
    b.put_i16(3);
    b.put_slice(b"cli");
    b.put_slice(body);
    b.freeze()
}

#[test]
fn a_valid_metadata_request_decodes() {
    let mut body = BytesMut::new();
    MetadataRequest::default().encode(&mut body, 1).unwrap();
    let req = parse_request(frame(3, 1, &body)).unwrap();
    assert_eq!(req.api_key, ApiKey::Metadata);
    assert_eq!(req.header.correlation_id, 42);
    assert_eq!(req.header.client_id, Some(StrBytes::from_static_str("cli")));
    assert!(matches!(req.body, RequestKind::Metadata(_)));
}

#[test]
fn flexible_header_decodes() {
    let mut b = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(3)
        .with_request_api_version(12)
        .with_correlation_id(7);
    header.encode(&mut b, 2).unwrap();
    MetadataRequest::default().encode(&mut b, 12).unwrap();
    let req = parse_request(b.freeze()).unwrap();
    assert_eq!(req.version(), 12);
    assert_eq!(req.header.correlation_id, 7);
}

#[test]
fn short_frames_unknown_keys_and_versions_are_refused() {
    assert!(matches!(
        parse_request(Bytes::from_static(&[0, 3, 0])),
        Err(ParseError::Truncated(3))
    ));
    assert!(matches!(
        parse_request(frame(999, 0, &[])),
        Err(ParseError::UnknownApiKey(999))
    ));
    // A real Kafka API samsa does not implement is "unknown" to us too.
    assert!(matches!(
        parse_request(frame(ApiKey::WriteTxnMarkers as i16, 1, &[])),
        Err(ParseError::UnknownApiKey(_))
    ));
    match parse_request(frame(18, 99, &[])) {
        Err(ParseError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            version: 99,
            correlation_id: 42,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse_request(frame(3, 13, &[])),
        Err(ParseError::UnsupportedVersion { .. })
    ));
}

#[test]
fn a_four_byte_body_claiming_2_pow_31_topics_is_refused_before_decoding() {
    let r = parse_request(frame(3, 1, &[0x7f, 0xff, 0xff, 0xff]));
    assert!(matches!(r, Err(ParseError::Guard { .. })), "{r:?}");
}

#[test]
fn unsupported_api_versions_reply_is_v0_with_error_35() {
    let b = api_versions_unsupported(42);
    let size = i32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
    assert_eq!(size, b.len() - 4);
    assert_eq!(
        i32::from_be_bytes(b[4..8].try_into().unwrap()),
        42,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(b[8..10].try_into().unwrap()),
        35,
        "UNSUPPORTED_VERSION"
    );
    let n = i32::from_be_bytes(b[10..14].try_into().unwrap());
    assert!(n >= 10, "the API table is included");
    // v0 entries are 6 bytes each (key, min, max) and nothing follows them.
    assert_eq!(b.len(), 14 + 6 * n as usize);
    let first_key = i16::from_be_bytes(b[14..16].try_into().unwrap());
    assert_eq!(first_key, 0, "Produce first");
}

#[test]
fn fetch_frames_share_record_sets_and_match_the_plain_encoding() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ResponseKind, TopicName};
    use samsa_protocol::codec::{encode_response, encode_response_frame};

    let big = Bytes::from(vec![7u8; 5000]);
    let small = Bytes::from(vec![9u8; 10]);
    let parts = vec![
        PartitionData::default()
            .with_partition_index(0)
            .with_records(Some(big.clone())),
        PartitionData::default()
            .with_partition_index(1)
            .with_records(Some(small)),
        PartitionData::default()
            .with_partition_index(2)
            .with_records(Some(big.slice(100..4000))),
        PartitionData::default().with_partition_index(3),
    ];
    let body = ResponseKind::Fetch(FetchResponse::default().with_responses(
        vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(parts)],
    ));
    for version in [4i16, 11, 12, 13] {
        let plain = encode_response(ApiKey::Fetch, version, 99, &body).unwrap();
        let frame = encode_response_frame(ApiKey::Fetch, version, 99, &body).unwrap();
        let mut joined = Vec::new();
        for c in frame.chunks() {
            joined.extend_from_slice(c);
        }
        assert_eq!(joined, plain.to_vec(), "v{version}");
        assert_eq!(frame.len(), plain.len());
        let size = i32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]);
        assert_eq!(size as usize, plain.len() - 4);
        // The large record sets are referenced, not copied.
        assert!(frame.chunks().iter().any(|c| c.as_ptr() == big.as_ptr()));
    }
}
