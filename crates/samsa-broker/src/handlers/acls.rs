//! DescribeAcls (29), CreateAcls (30) and DeleteAcls (31), v1-3 (KIP-140).
//! ACLs are metadata records ([`samsa_metadata::acl`]); Cluster Describe
//! (DescribeAcls) or Cluster Alter (Create/DeleteAcls) is checked by the
//! dispatcher ([`crate::authz`]).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::acl::{AclBinding, AclFilter, PatternType, Permission, ResourceType};
use samsa_metadata::security::AclOperation;

use super::s;
use crate::broker::Broker;
use crate::errors::controller_error;

/// A filter from its wire fields.
fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: name.as_ref().map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: AclOperation::from_code(operation),
        permission: Permission::from_code(permission),
    }
}

/// DescribeAcls: the ACLs the filter matches, grouped by resource pattern.
pub fn describe(broker: &Broker, r: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    let f = filter(
        r.resource_type_filter,
        &r.resource_name_filter,
        r.pattern_type_filter,
        &r.principal_filter,
        &r.host_filter,
        r.operation,
        r.permission_type,
    );
    if let Some(why) = f.invalid() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(s(why)));
    }
    let image = broker.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in image.acls.values().filter(|a| f.matches(a)) {
        by_resource
            .entry((
                acl.resource_type.code(),
                acl.resource_name.clone(),
                acl.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(s(acl.principal.clone()))
                    .with_host(s(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(s(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// CreateAcls: one result per creation, in order.
pub fn create(broker: &Broker, r: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    let bindings: Vec<AclBinding> = r
        .creations
        .iter()
        .map(|c| AclBinding {
            resource_type: ResourceType::from_code(c.resource_type),
            resource_name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: Permission::from_code(c.permission_type),
        })
        .collect();
    let results = match broker.admin(|c| c.create_acls(&bindings)) {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| match o {
                Ok(()) => AclCreationResult::default(),
                Err(why) => AclCreationResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(why))),
            })
            .collect(),
        Err(e) => bindings
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(controller_error(&e).code())
                    .with_error_message(Some(s(e.to_string())))
            })
            .collect(),
    };
    CreateAclsResponse::default().with_results(results)
}

/// DeleteAcls: per filter, the ACLs it deleted.
pub fn delete(broker: &Broker, r: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    let filters: Vec<AclFilter> = r
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let results = match broker.admin(|c| c.delete_acls(&filters)) {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| match o {
                Ok(matched) => DeleteAclsFilterResult::default()
                    .with_matching_acls(matched.iter().map(matching).collect()),
                Err(why) => DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(why))),
            })
            .collect(),
        Err(e) => filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(controller_error(&e).code())
                    .with_error_message(Some(s(e.to_string())))
            })
            .collect(),
    };
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(s(acl.resource_name.clone()))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(s(acl.principal.clone()))
        .with_host(s(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
