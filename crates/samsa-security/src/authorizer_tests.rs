use super::*;
use proptest::prelude::*;
use samsa_metadata::acl::AclFilter;

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: AclOperation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission: perm,
    }
}

fn map(acls: &[AclBinding]) -> AclMap {
    acls.iter()
        .enumerate()
        .map(|(i, a)| (uuid::Uuid::from_u128(i as u128 + 1), a.clone()))
        .collect()
}

fn topic(op: AclOperation, name: &str) -> Action<'_> {
    Action {
        operation: op,
        resource_type: ResourceType::Topic,
        resource_name: name,
    }
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

fn who(p: &KafkaPrincipal) -> Requester<'_> {
    Requester {
        principal: p,
        host: LOCAL,
    }
}

#[test]
fn documented_rules_hold() {
    use AclOperation::*;
    let alice = KafkaPrincipal::user("alice");
    let bob = KafkaPrincipal::user("bob");
    let admin = KafkaPrincipal::user("admin");
    let auth = Authorizer::new(std::slice::from_ref(&admin), false);
    let acls = map(&[
        acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            "*",
            Write,
            Permission::Allow,
        ),
        acl(
            ResourceType::Topic,
            "pay",
            PatternType::Prefixed,
            "User:*",
            "*",
            Read,
            Permission::Allow,
        ),
        acl(
            ResourceType::Topic,
            "payroll",
            PatternType::Literal,
            "User:bob",
            "*",
            All,
            Permission::Deny,
        ),
        acl(
            ResourceType::Topic,
            "cfg",
            PatternType::Literal,
            "User:bob",
            "127.0.0.1",
            AlterConfigs,
            Permission::Allow,
        ),
        acl(
            ResourceType::Topic,
            "far",
            PatternType::Literal,
            "User:bob",
            "10.0.0.1",
            Read,
            Permission::Allow,
        ),
    ]);
    // Write implies Describe, not Read.
    assert!(auth.authorize(&acls, who(&alice), topic(Write, "orders")));
    assert!(auth.authorize(&acls, who(&alice), topic(Describe, "orders")));
    assert!(!auth.authorize(&acls, who(&alice), topic(Read, "orders")));
    assert!(!auth.authorize(&acls, who(&bob), topic(Write, "orders")));
    // Prefixed and wildcard principal; DENY wins.
    assert!(auth.authorize(&acls, who(&alice), topic(Read, "payments")));
    assert!(auth.authorize(&acls, who(&bob), topic(Read, "payments")));
    assert!(!auth.authorize(&acls, who(&bob), topic(Read, "payroll")));
    assert!(auth.authorize(&acls, who(&alice), topic(Read, "payroll")));
    // AlterConfigs implies DescribeConfigs; hosts must match.
    assert!(auth.authorize(&acls, who(&bob), topic(DescribeConfigs, "cfg")));
    assert!(!auth.authorize(&acls, who(&bob), topic(Read, "far")));
    // No ACL on the resource: allow.everyone.if.no.acl.found decides.
    assert!(!auth.authorize(&acls, who(&alice), topic(Read, "none")));
    let open = Authorizer::new(&[], true);
    assert!(open.authorize(&acls, who(&alice), topic(Read, "none")));
    assert!(!open.authorize(&acls, who(&alice), topic(Read, "orders")));
    // Super users may do anything, even when denied.
    assert!(auth.authorize(&acls, who(&admin), topic(Delete, "payroll")));
    // Operations bitfield: alice on orders has Write and Describe.
    let ops = auth.authorized_operations(
        &acls,
        who(&alice),
        ResourceType::Topic,
        "orders",
        samsa_metadata::security::applicable_operations(
            samsa_metadata::security::AclResource::Topic,
        ),
    );
    assert_eq!(ops, (1 << 4) | (1 << 8));
    // Write on some topic.
    assert!(auth.authorize_any(&acls, who(&alice), Write, ResourceType::Topic));
    assert!(!auth.authorize_any(&acls, who(&bob), Write, ResourceType::Topic));
}

#[test]
fn configuration_fails_closed() {
    let mut cfg = StaticConfig::default();
    assert!(Authorizer::from_config(&cfg)
        .expect("no authorizer")
        .is_none());
    cfg.set(
        "authorizer.class.name",
        "kafka.security.authorizer.AclAuthorizer",
    )
    .expect("stored");
    assert!(Authorizer::from_config(&cfg).is_err());
    cfg.set("authorizer.class.name", STANDARD_AUTHORIZER)
        .expect("stored");
    // Not every API is checked yet: only an operator who accepts that runs it.
    assert!(matches!(
        Authorizer::from_config(&cfg),
        Err(AuthorizerError::UncheckedApisNotAccepted)
    ));
    cfg.set(crate::authorizer::UNCHECKED_APIS_KEY, "true")
        .expect("stored");
    cfg.set("super.users", "User:admin;User:CN=broker,O=x")
        .expect("stored");
    let a = Authorizer::from_config(&cfg).expect("ok").expect("some");
    assert!(a.is_super_user(&KafkaPrincipal::user("CN=broker,O=x")));
    assert!(!a.allow_if_no_acl);
    cfg.set("super.users", "admin").expect("stored");
    assert!(Authorizer::from_config(&cfg).is_err());
}

/// The reference: Kafka's documented rules, stated over sets and using the
/// DescribeAcls MATCH filter to find the resource's ACLs.
fn reference(
    acls: &[AclBinding],
    supers: &[String],
    allow_if_none: bool,
    principal: &str,
    host: &str,
    op: AclOperation,
    name: &str,
) -> bool {
    use AclOperation::*;
    if supers.iter().any(|s| s == principal) {
        return true;
    }
    let filter = AclFilter {
        resource_type: ResourceType::Topic,
        resource_name: Some(name.to_owned()),
        pattern_type: PatternType::Match,
        ..AclFilter::any()
    };
    let of_resource: Vec<&AclBinding> =
        acls.iter().filter(|a| filter.matches_resource(a)).collect();
    if of_resource.is_empty() {
        return allow_if_none;
    }
    let applying: Vec<&&AclBinding> = of_resource
        .iter()
        .filter(|a| [principal, "User:*"].contains(&a.principal.as_str()))
        .filter(|a| [host, "*"].contains(&a.host.as_str()))
        .collect();
    let mut granting = vec![op, All];
    if op == Describe {
        granting.extend([Read, Write, Delete, Alter]);
    }
    if op == DescribeConfigs {
        granting.push(AlterConfigs);
    }
    let denied = applying
        .iter()
        .any(|a| a.permission == Permission::Deny && [op, All].contains(&a.operation));
    let allowed = applying
        .iter()
        .any(|a| a.permission == Permission::Allow && granting.contains(&a.operation));
    !denied && allowed
}

fn arb_acl() -> impl Strategy<Value = AclBinding> {
    use AclOperation::*;
    (
        prop::sample::select(vec!["orders", "ord", "o", "*", "other"]),
        prop::bool::ANY,
        prop::sample::select(vec!["User:alice", "User:bob", "User:*"]),
        prop::sample::select(vec!["127.0.0.1", "10.0.0.2", "*"]),
        prop::sample::select(vec![
            Read,
            Write,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
            All,
            Create,
        ]),
        prop::bool::ANY,
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(name, prefixed, principal, host, op, allow, topic)| AclBinding {
                resource_type: if topic {
                    ResourceType::Topic
                } else {
                    ResourceType::Group
                },
                resource_name: name.into(),
                pattern_type: if prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                principal: principal.into(),
                host: host.into(),
                operation: op,
                permission: if allow {
                    Permission::Allow
                } else {
                    Permission::Deny
                },
            },
        )
}

proptest! {
    #[test]
    fn the_authorizer_agrees_with_the_documented_rules(
        acls in prop::collection::vec(arb_acl(), 0..8),
        alice_super in prop::bool::ANY,
        allow_if_none in prop::bool::ANY,
        principal in prop::sample::select(vec!["alice", "bob", "carol"]),
        host in prop::sample::select(vec!["127.0.0.1", "10.0.0.2"]),
        op in prop::sample::select(AclOperation::ALL[3..].to_vec()),
        name in prop::sample::select(vec!["orders", "ord", "other", "x"]),
    ) {
        let supers: Vec<String> = if alice_super { vec!["User:alice".into()] } else { vec![] };
        let super_principals: Vec<KafkaPrincipal> =
            supers.iter().filter_map(|s| KafkaPrincipal::parse(s)).collect();
        let auth = Authorizer::new(&super_principals, allow_if_none);
        let p = KafkaPrincipal::user(principal);
        let requester = Requester { principal: &p, host: host.parse().expect("ip") };
        let got = auth.authorize(&map(&acls), requester, topic(op, name));
        let want = reference(&acls, &supers, allow_if_none, &p.to_string(), host, op, name);
        prop_assert_eq!(got, want);
    }
}
