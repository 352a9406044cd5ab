//! Access control lists as Kafka's KRaft controller keeps them
//! (`AccessControlEntryRecord` / `RemoveAccessControlEntryRecord`, each ACL
//! with a Uuid id): the binding types, the filters of DescribeAcls and
//! DeleteAcls (Kafka's `ResourcePatternFilter.matches` and
//! `AccessControlEntryFilter.matches`), and planning CreateAcls/DeleteAcls
//! into metadata records. Deciding whether a request is allowed is
//! `samsa-security`'s authorizer; this module only stores and selects ACLs.

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::plan::Planned;
use crate::record::MetadataRecord;
use crate::security::AclOperation;
use crate::ControllerError;

/// Kafka's `ResourceType` (wire codes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum ResourceType {
    Unknown = 0,
    /// Filters only.
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

impl ResourceType {
    const ALL: [ResourceType; 8] = [
        ResourceType::Unknown,
        ResourceType::Any,
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    /// The type of wire code `code`; `Unknown` for any other code.
    pub fn from_code(code: i8) -> ResourceType {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(ResourceType::Unknown)
    }

    pub fn code(self) -> i8 {
        self as u8 as i8
    }

    /// Kafka's name (`Topic`, `TransactionalId`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Unknown => "Unknown",
            ResourceType::Any => "Any",
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
            ResourceType::DelegationToken => "DelegationToken",
            ResourceType::User => "User",
        }
    }
}

/// Kafka's `PatternType` (wire codes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum PatternType {
    Unknown = 0,
    /// Filters only: any pattern type, names compared exactly.
    Any = 1,
    /// Filters only: every ACL that would apply to the named resource
    /// (literal with that name or `*`, prefixed with a prefix of it).
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

impl PatternType {
    const ALL: [PatternType; 5] = [
        PatternType::Unknown,
        PatternType::Any,
        PatternType::Match,
        PatternType::Literal,
        PatternType::Prefixed,
    ];

    pub fn from_code(code: i8) -> PatternType {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(PatternType::Unknown)
    }

    pub fn code(self) -> i8 {
        self as u8 as i8
    }

    /// Kafka's name, upper case as kafka-acls.sh prints it (`LITERAL`).
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Unknown => "UNKNOWN",
            PatternType::Any => "ANY",
            PatternType::Match => "MATCH",
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

/// Kafka's `AclPermissionType` (wire codes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Permission {
    Unknown = 0,
    /// Filters only.
    Any = 1,
    Deny = 2,
    Allow = 3,
}

impl Permission {
    pub fn from_code(code: i8) -> Permission {
        match code {
            1 => Permission::Any,
            2 => Permission::Deny,
            3 => Permission::Allow,
            _ => Permission::Unknown,
        }
    }

    pub fn code(self) -> i8 {
        self as u8 as i8
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Unknown => "UNKNOWN",
            Permission::Any => "ANY",
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }
}

/// The resource name of a wildcard ACL (`--topic '*'`).
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal of an ACL for every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host of an ACL for every host.
pub const WILDCARD_HOST: &str = "*";
/// The only name a Cluster resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// One ACL: Kafka's `AclBinding` (a resource pattern and an access control
/// entry). Stored in [`MetadataRecord::AccessControlEntry`] as JSON with the
/// enum names (`{"resource_type":"Topic",...,"permission":"Allow"}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

/// A DescribeAcls / DeleteAcls filter: Kafka's `AclBindingFilter`. `None`
/// strings match anything; `Any` enum values match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl AclFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: Permission::Any,
        }
    }

    /// Why the filter is not one Kafka accepts (an `Unknown` element), or
    /// `None`.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            return Some("The resource pattern filter has unknown elements.");
        }
        if self.operation == AclOperation::Unknown || self.permission == Permission::Unknown {
            return Some("The access control entry filter has unknown elements.");
        }
        None
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    pub fn matches_resource(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != b.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == b.pattern_type {
            return *name == b.resource_name;
        }
        // MATCH: the ACLs that apply to resource `name`.
        match b.pattern_type {
            PatternType::Literal => {
                *name == b.resource_name || b.resource_name == WILDCARD_RESOURCE
            }
            PatternType::Prefixed => name.starts_with(&b.resource_name),
            _ => false,
        }
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    pub fn matches_entry(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == Permission::Any || self.permission == b.permission)
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        self.matches_resource(b) && self.matches_entry(b)
    }
}

/// Why Kafka's controller refuses to create `b` (INVALID_REQUEST), or
/// `None` (Kafka's `AclControlManager.validateNewAcl`).
pub fn invalid_new_acl(b: &AclBinding) -> Option<String> {
    if matches!(b.resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Some(format!("Invalid resourceType {}", b.resource_type.name()));
    }
    if !matches!(b.pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Some(format!("Invalid patternType {}", b.pattern_type.name()));
    }
    if matches!(b.operation, AclOperation::Unknown | AclOperation::Any) {
        return Some(format!("Invalid operation {}", b.operation.name()));
    }
    if matches!(b.permission, Permission::Unknown | Permission::Any) {
        return Some(format!("Invalid permissionType {}", b.permission.name()));
    }
    if b.resource_name.is_empty() {
        return Some("Resource name should not be empty".to_owned());
    }
    match b.principal.split_once(':') {
        Some((t, _)) if !t.is_empty() => {}
        _ => return Some(format!("Could not parse principal from `{}`", b.principal)),
    }
    if b.host.is_empty() {
        return Some("Invalid null host".to_owned());
    }
    None
}

/// The ACLs an image holds, by id.
pub type AclMap = std::collections::BTreeMap<uuid::Uuid, AclBinding>;

/// CreateAcls: one outcome per binding, in order; records for the valid
/// ones not already present (an existing identical ACL is a success that
/// writes nothing, as in Kafka).
pub fn plan_create_acls(
    image: &MetadataImage,
    bindings: &[AclBinding],
) -> Result<Planned<Vec<Result<(), String>>>, ControllerError> {
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(bindings.len());
    let mut added: Vec<&AclBinding> = Vec::new();
    for b in bindings {
        if let Some(why) = invalid_new_acl(b) {
            outcomes.push(Err(why));
            continue;
        }
        let exists = image.acls.values().any(|a| a == b) || added.contains(&b);
        if !exists {
            added.push(b);
            records.push(MetadataRecord::AccessControlEntry {
                id: uuid::Uuid::new_v4(),
                acl: b.clone(),
            });
        }
        outcomes.push(Ok(()));
    }
    Ok(Planned::new(records, outcomes))
}

/// DeleteAcls: per filter, the ACLs it matches (or why it is invalid);
/// a removal record for each matched ACL (once, when several filters match
/// it).
#[allow(clippy::type_complexity)]
pub fn plan_delete_acls(
    image: &MetadataImage,
    filters: &[AclFilter],
) -> Result<Planned<Vec<Result<Vec<AclBinding>, String>>>, ControllerError> {
    let mut removed = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(filters.len());
    for f in filters {
        if let Some(why) = f.invalid() {
            outcomes.push(Err(why.to_owned()));
            continue;
        }
        let mut matched = Vec::new();
        for (id, acl) in image.acls.iter().filter(|(_, a)| f.matches(a)) {
            matched.push(acl.clone());
            if removed.insert(*id) {
                records.push(MetadataRecord::RemoveAccessControlEntry { id: *id });
            }
        }
        outcomes.push(Ok(matched));
    }
    Ok(Planned::new(records, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: ResourceType, name: &str, pt: PatternType) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let literal = acl(ResourceType::Topic, "orders", PatternType::Literal);
        let wildcard = acl(ResourceType::Topic, "*", PatternType::Literal);
        let prefixed = acl(ResourceType::Topic, "ord", PatternType::Prefixed);
        let group = acl(ResourceType::Group, "orders", PatternType::Literal);
        let f = |pt: PatternType, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: name.map(str::to_owned),
            pattern_type: pt,
            ..AclFilter::any()
        };
        let all = [&literal, &wildcard, &prefixed, &group];
        let hits = |f: AclFilter| all.iter().filter(|a| f.matches(a)).count();
        assert_eq!(hits(AclFilter::any()), 4);
        assert_eq!(hits(f(PatternType::Any, None)), 3);
        assert_eq!(hits(f(PatternType::Any, Some("orders"))), 1);
        assert_eq!(hits(f(PatternType::Match, Some("orders"))), 3);
        assert_eq!(hits(f(PatternType::Match, Some("other"))), 1);
        assert_eq!(hits(f(PatternType::Literal, Some("orders"))), 1);
        assert_eq!(hits(f(PatternType::Prefixed, Some("orders"))), 0);
        assert_eq!(hits(f(PatternType::Prefixed, Some("ord"))), 1);
        let mut by_principal = AclFilter::any();
        by_principal.principal = Some("User:bob".into());
        assert_eq!(hits(by_principal), 0);
    }

    #[test]
    fn invalid_acls_are_refused_by_name() {
        let mut b = acl(ResourceType::Topic, "t", PatternType::Match);
        assert!(invalid_new_acl(&b).is_some_and(|w| w.contains("patternType")));
        b.pattern_type = PatternType::Literal;
        assert_eq!(invalid_new_acl(&b), None);
        b.principal = "alice".into();
        assert!(invalid_new_acl(&b).is_some_and(|w| w.contains("principal")));
        let mut c = acl(ResourceType::Any, "t", PatternType::Literal);
        assert!(invalid_new_acl(&c).is_some());
        c.resource_type = ResourceType::Topic;
        c.operation = AclOperation::Any;
        assert!(invalid_new_acl(&c).is_some());
    }
}
