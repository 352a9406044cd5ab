//! Request parsing end to end: header, version checks, guard, decode.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use samsa_protocol::codec::{
    api_versions_unsupported, parse_request, Chunk, FileRegion, ParseError,
};

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
        parse_request(frame(ApiKey::CreateDelegationToken as i16, 1, &[])),
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
        parse_request(frame(3, 14, &[])),
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
            match c {
                Chunk::Bytes(b) => joined.extend_from_slice(b),
                Chunk::File(_) => panic!("no file-backed sets were registered"),
            }
        }
        assert_eq!(joined, plain.to_vec(), "v{version}");
        assert_eq!(frame.len(), plain.len());
        let size = i32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]);
        assert_eq!(size as usize, plain.len() - 4);
        // The large record sets are referenced, not copied.
        assert!(frame
            .chunks()
            .iter()
            .any(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == big.as_ptr())));
    }
}

#[derive(Debug)]
struct TestRegion {
    file: std::sync::Arc<std::fs::File>,
    position: u64,
    len: usize,
}

impl FileRegion for TestRegion {
    fn file(&self) -> &std::fs::File {
        &self.file
    }
    fn position(&self) -> u64 {
        self.position
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read_append(&self, out: &mut BytesMut) -> std::io::Result<()> {
        let mut buf = vec![0u8; self.len];
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut buf, self.position)?;
        out.extend_from_slice(&buf);
        Ok(())
    }
}

/// File-backed record sets come out as file chunks in the right places, and
/// the frame's bytes (file chunks read back) equal the plain encoding of the
/// same response with the bytes in memory.
#[test]
fn fetch_frames_send_file_backed_record_sets_from_the_file() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ResponseKind, TopicName};
    use samsa_protocol::codec::{
        encode_response, encode_response_frame_with_files, FileRecordSets,
    };

    let content: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut tmp = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut tmp, &content).unwrap();
    let file = std::sync::Arc::new(tmp);
    let region = |position: u64, len: usize| -> Box<dyn FileRegion> {
        Box::new(TestRegion {
            file: file.clone(),
            position,
            len,
        })
    };
    let in_memory = Bytes::from(vec![5u8; 3000]);
    let build = |records: [Option<Bytes>; 3]| {
        let [a, b, c] = records;
        ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    PartitionData::default().with_partition_index(0).with_records(a),
                    PartitionData::default().with_partition_index(1).with_records(b),
                ]),
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("u")))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_records(c)]),
        ]))
    };
    for version in [4i16, 11, 12, 13] {
        let mut files = FileRecordSets::default();
        // Partition t-0: two regions (two segments); u-0: one region.
        let p0 = files
            .add(vec![region(100, 4000), region(9000, 2000)])
            .unwrap();
        let p2 = files.add(vec![region(0, 20_000)]).unwrap();
        assert_eq!(files.len(), 2);
        // Too small to be worth a file chunk: the caller reads it instead.
        assert!(files.add(vec![region(0, 10)]).is_none());
        let with_placeholders = build([Some(p0), Some(in_memory.clone()), Some(p2)]);
        let frame =
            encode_response_frame_with_files(ApiKey::Fetch, version, 7, &with_placeholders, files)
                .unwrap();

        let mut t0 = content[100..4100].to_vec();
        t0.extend_from_slice(&content[9000..11_000]);
        let plain_body = build([
            Some(Bytes::from(t0)),
            Some(in_memory.clone()),
            Some(Bytes::from(content.clone())),
        ]);
        let plain = encode_response(ApiKey::Fetch, version, 7, &plain_body).unwrap();
        assert_eq!(
            frame.to_bytes().unwrap().to_vec(),
            plain.to_vec(),
            "v{version}"
        );
        assert_eq!(frame.len(), plain.len());
        let file_chunks: Vec<(u64, usize)> = frame
            .chunks()
            .iter()
            .filter_map(|c| match c {
                Chunk::File(f) => Some((f.position(), f.len())),
                Chunk::Bytes(_) => None,
            })
            .collect();
        assert_eq!(file_chunks, vec![(100, 4000), (9000, 2000), (0, 20_000)]);
        // The in-memory set between them is still shared, not copied.
        assert!(frame
            .chunks()
            .iter()
            .any(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == in_memory.as_ptr())));
    }

    // A registered set whose placeholder never reaches the encoder is an
    // error, not a response with bytes missing.
    let mut files = FileRecordSets::default();
    let _lost = files.add(vec![region(0, 5000)]).unwrap();
    let body = build([None, Some(in_memory.clone()), None]);
    assert!(encode_response_frame_with_files(ApiKey::Fetch, 12, 7, &body, files).is_err());
}
