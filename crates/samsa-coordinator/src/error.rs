//! Typed coordinator errors and the Kafka error codes they are answered with.

/// Kafka's error codes (the numbers of `org.apache.kafka.common.protocol.Errors`) that
/// the coordinator answers with.
pub mod codes {
    /// No error.
    pub const NONE: i16 = 0;
    /// UNKNOWN_SERVER_ERROR.
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// OFFSET_METADATA_TOO_LARGE.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR.
    pub const NOT_COORDINATOR: i16 = 16;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// INCONSISTENT_GROUP_PROTOCOL.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// INVALID_GROUP_ID.
    pub const INVALID_GROUP_ID: i16 = 24;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// INVALID_SESSION_TIMEOUT.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// REBALANCE_IN_PROGRESS.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// NON_EMPTY_GROUP.
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// GROUP_ID_NOT_FOUND.
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// MEMBER_ID_REQUIRED (KIP-394).
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// GROUP_MAX_SIZE_REACHED.
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    /// FENCED_INSTANCE_ID (KIP-345).
    pub const FENCED_INSTANCE_ID: i16 = 82;
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    /// FENCED_MEMBER_EPOCH (KIP-848).
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    /// UNRELEASED_INSTANCE_ID (KIP-848).
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    /// UNSUPPORTED_ASSIGNOR (KIP-848).
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    /// STALE_MEMBER_EPOCH (KIP-848).
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    /// A subscribed regular expression does not compile.
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
    /// OffsetFetch `require_stable`: the partition has pending transactional offsets.
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}

/// A refusal of a group request; [`GroupError::code`] is the Kafka code it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The coordinator is still replaying `__consumer_offsets`.
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    /// The group is being removed or converted; the client retries.
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// This coordinator does not serve the group (unloaded, or the group's
    /// `__consumer_offsets` partition is not owned).
    #[error("this broker is not the coordinator")]
    NotCoordinator,
    /// The generation id is not the group's.
    #[error("illegal generation")]
    IllegalGeneration,
    /// Protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// Empty group id.
    #[error("invalid group id")]
    InvalidGroupId,
    /// The member (or group) is not known.
    #[error("unknown member id")]
    UnknownMemberId,
    /// The session timeout is outside the broker's bounds.
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    /// A rebalance is in progress; the member rejoins.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// The request breaks a rule or a limit.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request's API version cannot do this.
    #[error("unsupported version: {0}")]
    UnsupportedVersion(String),
    /// The group still has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// The group does not exist (or has another type).
    #[error("group id not found")]
    GroupIdNotFound,
    /// The group is full.
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    /// Another member now owns this `group.instance.id`.
    #[error("fenced instance id")]
    FencedInstanceId,
    /// The group still consumes the topic.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// The member epoch is not the coordinator's.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// The static member's instance id is still used by an active member.
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    /// The requested server-side assignor is not supported.
    #[error("unsupported assignor: {0}")]
    UnsupportedAssignor(String),
    /// The member epoch of an offset commit/fetch is not the member's.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// A subscribed regular expression does not compile (the message says why).
    #[error("{0}")]
    InvalidRegularExpression(String),
}

impl GroupError {
    /// The Kafka error code for this refusal.
    pub fn code(&self) -> i16 {
        use codes::*;
        match self {
            GroupError::CoordinatorLoadInProgress => COORDINATOR_LOAD_IN_PROGRESS,
            GroupError::CoordinatorNotAvailable => COORDINATOR_NOT_AVAILABLE,
            GroupError::NotCoordinator => NOT_COORDINATOR,
            GroupError::IllegalGeneration => ILLEGAL_GENERATION,
            GroupError::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
            GroupError::InvalidGroupId => INVALID_GROUP_ID,
            GroupError::UnknownMemberId => UNKNOWN_MEMBER_ID,
            GroupError::InvalidSessionTimeout => INVALID_SESSION_TIMEOUT,
            GroupError::RebalanceInProgress => REBALANCE_IN_PROGRESS,
            GroupError::InvalidRequest(_) => INVALID_REQUEST,
            GroupError::UnsupportedVersion(_) => UNSUPPORTED_VERSION,
            GroupError::NonEmptyGroup => NON_EMPTY_GROUP,
            GroupError::GroupIdNotFound => GROUP_ID_NOT_FOUND,
            GroupError::GroupMaxSizeReached => GROUP_MAX_SIZE_REACHED,
            GroupError::FencedInstanceId => FENCED_INSTANCE_ID,
            GroupError::GroupSubscribedToTopic => GROUP_SUBSCRIBED_TO_TOPIC,
            GroupError::FencedMemberEpoch => FENCED_MEMBER_EPOCH,
            GroupError::UnreleasedInstanceId => UNRELEASED_INSTANCE_ID,
            GroupError::UnsupportedAssignor(_) => UNSUPPORTED_ASSIGNOR,
            GroupError::StaleMemberEpoch => STALE_MEMBER_EPOCH,
            GroupError::InvalidRegularExpression(_) => INVALID_REGULAR_EXPRESSION,
        }
    }

    /// The human-readable message for responses that carry one.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Why [`crate::Coordinator::replay`] refused a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The key or value bytes are malformed or of an unknown version/type. The broker may
    /// log and skip the record (Kafka fails the load instead).
    #[error("undecodable record: {0}")]
    Decode(#[from] crate::codec::DecodeError),
    /// Records are only replayed while loading (before `finish_loading`), or, on an
    /// active coordinator, for a partition gained and still loading.
    #[error("replay is only allowed while the coordinator is loading")]
    NotLoading,
}
