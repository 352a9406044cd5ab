//! The ACL authorizer: Kafka's `StandardAuthorizer` decision rules, sans
//! I/O and without broker knowledge. It is handed the ACLs of the current
//! metadata image and answers whether a principal connecting from a host may
//! perform an operation on a resource.
//!
//! The rules (Kafka's `StandardAuthorizerData.authorize`):
//! 1. A principal listed in `super.users` may do anything.
//! 2. The ACLs *of the resource* are the LITERAL ones naming it or `*` and
//!    the PREFIXED ones whose name is a prefix of it, of the same resource
//!    type. When there are none, the answer is `allow.everyone.if.no.acl.found`
//!    (default false).
//! 3. Among them, an ACL *applies* when its principal is the request's or
//!    `User:*`, and its host is the client's IP address or `*`.
//! 4. A DENY that applies with the operation or `All` denies. Otherwise an
//!    ALLOW that applies with the operation, `All`, or an operation implying
//!    it (Describe is implied by Read, Write, Delete and Alter;
//!    DescribeConfigs by AlterConfigs) allows. Otherwise: denied.

use std::collections::HashSet;
use std::net::IpAddr;

use samsa_metadata::acl::{
    AclBinding, AclMap, PatternType, Permission, ResourceType, WILDCARD_HOST, WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
};
use samsa_metadata::config::StaticConfig;
use samsa_metadata::security::AclOperation;

use crate::principal::KafkaPrincipal;

/// Kafka's class name for the KRaft authorizer.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// samsa's short name for the same authorizer.
pub const STANDARD_AUTHORIZER_ALIAS: &str = "samsa.StandardAuthorizer";

/// A bad authorizer setting (startup refuses it).
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    #[error("authorizer.class.name={0}: samsa implements only {STANDARD_AUTHORIZER} (or {STANDARD_AUTHORIZER_ALIAS})")]
    UnknownClass(String),
    #[error("super.users: {0:?} is not a principal (Type:name)")]
    BadSuperUser(String),
    #[error("allow.everyone.if.no.acl.found: {0:?} is not true or false")]
    BadBool(String),
    #[error("authorizer.class.name: samsa's authorizer does not check every API yet (the group read APIs, the transaction APIs, ListOffsets, OffsetForLeaderEpoch, DescribeConfigs and DescribeTopicPartitions are let through); set {UNCHECKED_APIS_KEY}=true to run it anyway")]
    UncheckedApisNotAccepted,
}

/// The key an operator sets to run the authorizer while some APIs are not
/// checked yet. Without it the authorizer refuses to start (fail closed):
/// nobody gets partial protection without asking for it.
pub const UNCHECKED_APIS_KEY: &str = "samsa.authorizer.unchecked.apis.allow";

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action<'a> {
    pub operation: AclOperation,
    pub resource_type: ResourceType,
    pub resource_name: &'a str,
}

/// Who asks, from where.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub principal: &'a KafkaPrincipal,
    pub host: IpAddr,
}

/// The configured authorizer.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    /// `super.users`, as `Type:name` strings.
    super_users: HashSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// The authorizer `cfg` asks for: `None` without `authorizer.class.name`;
    /// an error for a class other than the standard one (fail closed) or a
    /// malformed `super.users` / `allow.everyone.if.no.acl.found`.
    pub fn from_config(cfg: &StaticConfig) -> Result<Option<Authorizer>, AuthorizerError> {
        let class = cfg.explicit("authorizer.class.name").map(str::trim);
        match class {
            None | Some("") => return Ok(None),
            Some(STANDARD_AUTHORIZER) | Some(STANDARD_AUTHORIZER_ALIAS) => {}
            Some(other) => return Err(AuthorizerError::UnknownClass(other.to_owned())),
        }
        if cfg.explicit(UNCHECKED_APIS_KEY).map(str::trim) != Some("true") {
            return Err(AuthorizerError::UncheckedApisNotAccepted);
        }
        let mut super_users = HashSet::new();
        for user in cfg
            .explicit("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            let p = KafkaPrincipal::parse(user)
                .ok_or_else(|| AuthorizerError::BadSuperUser(user.to_owned()))?;
            super_users.insert(p.to_string());
        }
        let allow_if_no_acl = match cfg
            .explicit("allow.everyone.if.no.acl.found")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => return Err(AuthorizerError::BadBool(v)),
        };
        Ok(Some(Authorizer {
            super_users,
            allow_if_no_acl,
        }))
    }

    /// An authorizer with these super users and no-ACL rule (tests, tools).
    pub fn new(super_users: &[KafkaPrincipal], allow_if_no_acl: bool) -> Authorizer {
        Authorizer {
            super_users: super_users.iter().map(|p| p.to_string()).collect(),
            allow_if_no_acl,
        }
    }

    pub fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.super_users.contains(&principal.to_string())
    }

    /// Whether `who` may perform `action`, given every ACL of the cluster.
    pub fn authorize(&self, acls: &AclMap, who: Requester<'_>, action: Action<'_>) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let principal = who.principal.to_string();
        let host = who.host.to_string();
        let mut resource_has_acls = false;
        let mut allowed = false;
        for acl in acls.values() {
            if !resource_matches(acl, action.resource_type, action.resource_name) {
                continue;
            }
            resource_has_acls = true;
            let applies = (acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.host == host || acl.host == WILDCARD_HOST);
            if !applies {
                continue;
            }
            match acl.permission {
                Permission::Deny if covers(acl.operation, action.operation, false) => return false,
                Permission::Allow if covers(acl.operation, action.operation, true) => {
                    allowed = true
                }
                _ => {}
            }
        }
        if !resource_has_acls {
            return self.allow_if_no_acl;
        }
        allowed
    }

    /// Kafka's `authorized_operations` bitfield for a resource: bit `n` set
    /// for each operation of `applicable` that `who` may perform.
    pub fn authorized_operations(
        &self,
        acls: &AclMap,
        who: Requester<'_>,
        resource_type: ResourceType,
        resource_name: &str,
        applicable: &[AclOperation],
    ) -> i32 {
        applicable
            .iter()
            .filter(|op| {
                self.authorize(
                    acls,
                    who,
                    Action {
                        operation: **op,
                        resource_type,
                        resource_name,
                    },
                )
            })
            .fold(0, |bits, op| bits | 1 << (*op as u8))
    }

    /// Whether `who` may perform `operation` on *some* resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, used for
    /// idempotent produce: Write on any topic). True when an ALLOW could
    /// match a resource of the type that no DENY with the same or a wider
    /// pattern takes away; super users always.
    pub fn authorize_any(
        &self,
        acls: &AclMap,
        who: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let principal = who.principal.to_string();
        let host = who.host.to_string();
        let applies = |acl: &AclBinding| {
            acl.resource_type == resource_type
                && (acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.host == host || acl.host == WILDCARD_HOST)
                && covers(
                    acl.operation,
                    operation,
                    acl.permission == Permission::Allow,
                )
        };
        let denies: Vec<&AclBinding> = acls
            .values()
            .filter(|a| a.permission == Permission::Deny && applies(a))
            .collect();
        // A DENY on the literal wildcard denies every resource.
        if denies
            .iter()
            .any(|d| d.pattern_type == PatternType::Literal && d.resource_name == WILDCARD_RESOURCE)
        {
            return false;
        }
        acls.values()
            .filter(|a| a.permission == Permission::Allow && applies(a))
            .any(|allow| {
                !denies
                    .iter()
                    .any(|d| match (d.pattern_type, allow.pattern_type) {
                        (PatternType::Literal, PatternType::Literal) => {
                            d.resource_name == allow.resource_name
                        }
                        (PatternType::Prefixed, _) => {
                            allow.resource_name.starts_with(&d.resource_name)
                        }
                        _ => false,
                    })
            })
    }
}

/// Whether `acl`'s resource pattern covers resource `name` of type `rt`.
fn resource_matches(acl: &AclBinding, rt: ResourceType, name: &str) -> bool {
    if acl.resource_type != rt {
        return false;
    }
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD_RESOURCE,
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

/// Whether an ACL for operation `acl_op` covers `requested`; for an ALLOW
/// (`allow`) the implied operations count too.
fn covers(acl_op: AclOperation, requested: AclOperation, allow: bool) -> bool {
    use AclOperation::*;
    if acl_op == All || acl_op == requested {
        return true;
    }
    allow
        && match requested {
            Describe => matches!(acl_op, Read | Write | Delete | Alter),
            DescribeConfigs => acl_op == AlterConfigs,
            _ => false,
        }
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
