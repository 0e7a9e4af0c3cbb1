//! One test per validation rule; each asserts the error names its field.

use std::collections::BTreeMap;

use super::is_fargate_pair;
use crate::{AgentDocument, DesiredState, Plan, PluginDocument, Resources, Size};

fn valid() -> AgentDocument {
    AgentDocument {
        agent_id: Some("acme-support".into()),
        client_id: Some("acme".into()),
        ..AgentDocument::default()
    }
}

/// Asserts the document is refused with an error naming exactly `field`.
#[track_caller]
fn refused(doc: AgentDocument, field: &str) -> String {
    match doc.validate() {
        Ok(spec) => panic!("expected {field} to be refused, got {spec:?}"),
        Err(e) => {
            assert!(e.names(field), "expected an error naming {field}, got: {e}");
            e.to_string()
        }
    }
}

#[track_caller]
fn accepted(doc: AgentDocument) -> crate::AgentSpec {
    match doc.validate() {
        Ok(spec) => spec,
        Err(e) => panic!("expected valid, got: {e}"),
    }
}

#[test]
fn minimal_document_validates_with_defaults() {
    let spec = accepted(valid());
    assert_eq!(spec.desired_state, DesiredState::Running);
    assert_eq!(spec.size, None);
    assert_eq!(
        spec.resources(),
        Resources {
            cpu: 512,
            memory: 1024
        }
    );
    assert_eq!(spec.image, None);
}

#[test]
fn agent_id_is_required() {
    let msg = refused(
        AgentDocument {
            agent_id: None,
            ..valid()
        },
        "agent_id",
    );
    assert!(msg.contains("agent_id: is required"), "{msg}");
}

#[test]
fn agent_id_must_be_a_lowercase_dns_label() {
    for bad in ["Acme", "acme_1", "-acme", "acme-", "", "a.b", "ácme"] {
        refused(
            AgentDocument {
                agent_id: Some(bad.into()),
                ..valid()
            },
            "agent_id",
        );
    }
}

#[test]
fn agent_id_is_at_most_40_characters() {
    accepted(AgentDocument {
        agent_id: Some("a".repeat(40)),
        ..valid()
    });
    refused(
        AgentDocument {
            agent_id: Some("a".repeat(41)),
            ..valid()
        },
        "agent_id",
    );
}

#[test]
fn client_id_is_required() {
    refused(
        AgentDocument {
            client_id: None,
            ..valid()
        },
        "client_id",
    );
}

#[test]
fn client_id_must_be_a_dns_label_of_at_most_40() {
    for bad in ["ACME".to_string(), "a".repeat(41), "acme corp".into()] {
        refused(
            AgentDocument {
                client_id: Some(bad),
                ..valid()
            },
            "client_id",
        );
    }
}

#[test]
fn desired_state_is_running_or_stopped() {
    let stopped = accepted(AgentDocument {
        desired_state: Some("stopped".into()),
        ..valid()
    });
    assert_eq!(stopped.desired_state, DesiredState::Stopped);
    refused(
        AgentDocument {
            desired_state: Some("paused".into()),
            ..valid()
        },
        "desired_state",
    );
}

#[test]
fn plan_is_small_medium_or_large() {
    for (name, plan) in [
        ("small", Plan::Small),
        ("medium", Plan::Medium),
        ("large", Plan::Large),
    ] {
        let spec = accepted(AgentDocument {
            plan: Some(name.into()),
            ..valid()
        });
        assert_eq!(spec.size, Some(Size::Plan(plan)));
    }
    refused(
        AgentDocument {
            plan: Some("huge".into()),
            ..valid()
        },
        "plan",
    );
}

#[test]
fn plan_resources_match_the_brief() {
    assert_eq!(
        Plan::Small.resources(),
        Resources {
            cpu: 512,
            memory: 1024
        }
    );
    assert_eq!(
        Plan::Medium.resources(),
        Resources {
            cpu: 1024,
            memory: 2048
        }
    );
    assert_eq!(
        Plan::Large.resources(),
        Resources {
            cpu: 2048,
            memory: 4096
        }
    );
}

#[test]
fn plan_and_cpu_memory_are_exclusive() {
    let msg = refused(
        AgentDocument {
            plan: Some("small".into()),
            cpu: Some(512),
            memory: Some(1024),
            ..valid()
        },
        "plan",
    );
    assert!(msg.contains("not both"), "{msg}");
}

#[test]
fn cpu_without_memory_is_refused() {
    refused(
        AgentDocument {
            cpu: Some(512),
            ..valid()
        },
        "memory",
    );
}

#[test]
fn memory_without_cpu_is_refused() {
    refused(
        AgentDocument {
            memory: Some(1024),
            ..valid()
        },
        "cpu",
    );
}

#[test]
fn explicit_cpu_memory_must_be_a_fargate_pair() {
    let spec = accepted(AgentDocument {
        cpu: Some(4096),
        memory: Some(30720),
        ..valid()
    });
    assert_eq!(
        spec.size,
        Some(Size::Explicit(Resources {
            cpu: 4096,
            memory: 30720
        }))
    );
    let msg = refused(
        AgentDocument {
            cpu: Some(512),
            memory: Some(512),
            ..valid()
        },
        "memory",
    );
    assert!(msg.contains("Fargate"), "{msg}");
}

#[test]
fn fargate_table_is_exact() {
    let valid_pairs: &[(u32, &[u32])] = &[
        (256, &[512, 1024, 2048]),
        (512, &[1024, 2048, 3072, 4096]),
        (1024, &[2048, 3072, 4096, 5120, 6144, 7168, 8192]),
    ];
    for (cpu, mems) in valid_pairs {
        for mem in (256..=9216).step_by(256) {
            assert_eq!(
                is_fargate_pair(*cpu, mem),
                mems.contains(&mem),
                "cpu {cpu} memory {mem}"
            );
        }
    }
    for mem in (4096..=16384).step_by(1024) {
        assert!(is_fargate_pair(2048, mem), "2048/{mem}");
    }
    assert!(!is_fargate_pair(2048, 17408));
    for mem in (8192..=30720).step_by(1024) {
        assert!(is_fargate_pair(4096, mem), "4096/{mem}");
    }
    assert!(!is_fargate_pair(4096, 31744));
    assert!(is_fargate_pair(8192, 16384));
    assert!(is_fargate_pair(8192, 20480));
    assert!(!is_fargate_pair(8192, 17408), "8 vCPU steps by 4096");
    assert!(is_fargate_pair(8192, 61440));
    assert!(is_fargate_pair(16384, 32768));
    assert!(is_fargate_pair(16384, 40960));
    assert!(!is_fargate_pair(16384, 36864), "16 vCPU steps by 8192");
    assert!(is_fargate_pair(16384, 122880));
    assert!(!is_fargate_pair(16384, 131072));
    assert!(!is_fargate_pair(768, 2048), "768 is no Fargate cpu");
    assert!(!is_fargate_pair(256, 1536));
}

#[test]
fn image_accepts_tags_and_digests() {
    let digest = format!("sha256:{}", "a".repeat(64));
    for good in [
        "openclaw/openclaw:latest".to_string(),
        "openclaw/openclaw:v1.2.3".into(),
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/openclaw/agent:2026-01".into(),
        "localhost:5000/agent:dev".into(),
        format!("ghcr.io/openclaw/agent@{digest}"),
        format!("ghcr.io/openclaw/agent:v1@{digest}"),
    ] {
        let spec = accepted(AgentDocument {
            image: Some(good.clone()),
            ..valid()
        });
        assert_eq!(spec.image.as_deref(), Some(good.as_str()));
    }
}

#[test]
fn image_must_be_an_oci_reference_with_tag_or_digest() {
    for bad in [
        "openclaw/openclaw",
        "OpenClaw/agent:v1",
        "openclaw/agent:",
        "openclaw/agent@sha256:abc",
        "openclaw agent:v1",
        "https://ghcr.io/openclaw/agent:v1",
        "",
    ] {
        refused(
            AgentDocument {
                image: Some(bad.into()),
                ..valid()
            },
            "image",
        );
    }
}

#[test]
fn env_names_match_the_shell_rule() {
    let mut env = BTreeMap::new();
    env.insert("LOG_LEVEL".to_string(), "debug".to_string());
    env.insert("_PRIVATE2".to_string(), String::new());
    accepted(AgentDocument { env, ..valid() });
    for bad in ["log_level", "1ABC", "A-B", ""] {
        let env = BTreeMap::from([(bad.to_string(), "x".to_string())]);
        refused(AgentDocument { env, ..valid() }, &format!("env.{bad}"));
    }
}

#[test]
fn env_may_not_use_reserved_names() {
    for reserved in crate::RESERVED_ENV {
        let env = BTreeMap::from([(reserved.to_string(), "x".to_string())]);
        let msg = refused(AgentDocument { env, ..valid() }, &format!("env.{reserved}"));
        assert!(msg.contains("reserved"), "{msg}");
    }
}

#[test]
fn env_may_not_repeat_a_secret_key() {
    let env = BTreeMap::from([("OPENAI_API_KEY".to_string(), "x".to_string())]);
    refused(
        AgentDocument {
            env,
            secret_keys: vec!["OPENAI_API_KEY".into()],
            ..valid()
        },
        "env.OPENAI_API_KEY",
    );
}

#[test]
fn secret_keys_follow_the_env_name_rule() {
    accepted(AgentDocument {
        secret_keys: vec!["OPENAI_API_KEY".into(), "GITHUB_TOKEN".into()],
        ..valid()
    });
    refused(
        AgentDocument {
            secret_keys: vec!["GITHUB_TOKEN".into(), "openai-key".into()],
            ..valid()
        },
        "secret_keys[1]",
    );
}

#[test]
fn secret_keys_may_not_be_reserved() {
    refused(
        AgentDocument {
            secret_keys: vec!["AGENT_ID".into()],
            ..valid()
        },
        "secret_keys[0]",
    );
}

#[test]
fn secret_keys_appear_once() {
    let msg = refused(
        AgentDocument {
            secret_keys: vec!["A".into(), "B".into(), "A".into()],
            ..valid()
        },
        "secret_keys[2]",
    );
    assert!(msg.contains("duplicate"), "{msg}");
}

fn with_tags(tags: &[(&str, &str)]) -> AgentDocument {
    AgentDocument {
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        ..valid()
    }
}

#[test]
fn tags_accept_the_aws_character_set() {
    accepted(with_tags(&[
        ("CostCenter", "Client A"),
        ("team/owner", "ops@example.com"),
        ("k.v_x:y=z+w-1", ""),
    ]));
}

#[test]
fn tags_are_at_most_40() {
    let many: Vec<(String, String)> = (0..41).map(|i| (format!("k{i}"), "v".into())).collect();
    let doc = AgentDocument {
        tags: many.into_iter().collect(),
        ..valid()
    };
    refused(doc, "tags");
    let forty: BTreeMap<String, String> = (0..40).map(|i| (format!("k{i}"), "v".into())).collect();
    accepted(AgentDocument {
        tags: forty,
        ..valid()
    });
}

#[test]
fn tag_keys_are_1_to_128_characters() {
    refused(with_tags(&[("", "v")]), "tags.");
    let long = "k".repeat(129);
    refused(with_tags(&[(long.as_str(), "v")]), &format!("tags.{long}"));
    let max = "k".repeat(128);
    accepted(with_tags(&[(max.as_str(), "v")]));
}

#[test]
fn tag_values_are_at_most_256_characters() {
    let long = "v".repeat(257);
    refused(
        with_tags(&[("CostCenter", long.as_str())]),
        "tags.CostCenter",
    );
    let max = "v".repeat(256);
    accepted(with_tags(&[("CostCenter", max.as_str())]));
}

#[test]
fn tag_keys_use_only_allowed_characters() {
    refused(with_tags(&[("cost#center", "v")]), "tags.cost#center");
}

#[test]
fn tag_values_use_only_allowed_characters() {
    refused(with_tags(&[("CostCenter", "a,b")]), "tags.CostCenter");
}

#[test]
fn tag_keys_may_not_start_with_aws_in_any_case() {
    refused(with_tags(&[("aws:foo", "v")]), "tags.aws:foo");
    refused(with_tags(&[("AWS:foo", "v")]), "tags.AWS:foo");
}

#[test]
fn tag_keys_may_not_start_with_clawfleet() {
    refused(
        with_tags(&[("clawfleet:agent-id", "v")]),
        "tags.clawfleet:agent-id",
    );
    refused(with_tags(&[("ClawFleet:x", "v")]), "tags.ClawFleet:x");
}

fn plugin(name: &str, source: &str, version: &str) -> PluginDocument {
    PluginDocument {
        name: name.into(),
        source: source.into(),
        version: version.into(),
    }
}

#[test]
fn plugins_accept_https_and_git_sources() {
    accepted(AgentDocument {
        plugins: vec![
            plugin("a", "https://github.com/openclaw/a", "1.0.0"),
            plugin("b", "git@github.com:openclaw/b.git", "main"),
            plugin("c", "git://example.com/c.git", "v2"),
            plugin("d", "ssh://git@example.com/d.git", "v2"),
            plugin("e", "git+https://example.com/e.git", "v2"),
        ],
        ..valid()
    });
}

#[test]
fn plugin_source_must_be_https_or_git() {
    let msg = refused(
        AgentDocument {
            plugins: vec![
                plugin("a", "https://github.com/openclaw/a", "1"),
                plugin("b", "https://github.com/openclaw/b", "1"),
                plugin("c", "http://example.com/c", "1"),
            ],
            ..valid()
        },
        "plugins[2].source",
    );
    assert!(
        msg.contains("plugins[2].source: must be an https:// or git URL"),
        "{msg}"
    );
    for bad in ["", "ftp://x/y", "https://", "/local/path", "https://a b"] {
        refused(
            AgentDocument {
                plugins: vec![plugin("a", bad, "1")],
                ..valid()
            },
            "plugins[0].source",
        );
    }
}

#[test]
fn plugin_names_are_unique() {
    refused(
        AgentDocument {
            plugins: vec![
                plugin("a", "https://x.io/a", "1"),
                plugin("a", "https://x.io/b", "1"),
            ],
            ..valid()
        },
        "plugins[1].name",
    );
}

#[test]
fn plugin_name_is_required() {
    refused(
        AgentDocument {
            plugins: vec![plugin("", "https://x.io/a", "1")],
            ..valid()
        },
        "plugins[0].name",
    );
}

#[test]
fn plugin_names_and_versions_have_no_control_characters() {
    for (name, version, field) in [
        ("a\u{1c}b", "1", "plugins[0].name"),
        ("a\u{7f}", "1", "plugins[0].name"),
        ("a", "1\u{1f}", "plugins[0].version"),
    ] {
        refused(
            AgentDocument {
                plugins: vec![plugin(name, "https://x.io/a", version)],
                ..valid()
            },
            field,
        );
    }
}

#[test]
fn plugin_version_is_required() {
    refused(
        AgentDocument {
            plugins: vec![plugin("a", "https://x.io/a", "")],
            ..valid()
        },
        "plugins[0].version",
    );
}

#[test]
fn skills_are_unique() {
    refused(
        AgentDocument {
            skills: vec!["web".into(), "voice".into(), "web".into()],
            ..valid()
        },
        "skills[2]",
    );
}

#[test]
fn skills_are_not_empty() {
    refused(
        AgentDocument {
            skills: vec![String::new()],
            ..valid()
        },
        "skills[0]",
    );
}

#[test]
fn restart_requested_at_is_rfc3339() {
    accepted(AgentDocument {
        restart_requested_at: Some("2026-11-25T10:00:00Z".into()),
        ..valid()
    });
    accepted(AgentDocument {
        restart_requested_at: Some("2026-11-25T10:00:00.5+02:00".into()),
        ..valid()
    });
    refused(
        AgentDocument {
            restart_requested_at: Some("yesterday".into()),
            ..valid()
        },
        "restart_requested_at",
    );
}

#[test]
fn api_version_is_clawfleet_v1_or_absent() {
    accepted(AgentDocument {
        api_version: Some("clawfleet/v1".into()),
        ..valid()
    });
    refused(
        AgentDocument {
            api_version: Some("clawfleet/v2".into()),
            ..valid()
        },
        "api_version",
    );
}

#[test]
fn overrides_must_fit_in_8192_characters() {
    let env: BTreeMap<String, String> = (0..10)
        .map(|i| (format!("VAR_{i}"), "x".repeat(800)))
        .collect();
    let msg = refused(AgentDocument { env, ..valid() }, "env");
    assert!(msg.contains("8192"), "{msg}");
    let env: BTreeMap<String, String> = (0..5)
        .map(|i| (format!("VAR_{i}"), "x".repeat(800)))
        .collect();
    accepted(AgentDocument { env, ..valid() });
}

#[test]
fn overrides_count_plugins_too() {
    let plugins = (0..100)
        .map(|i| {
            plugin(
                &format!("plugin-{i}"),
                &format!("https://github.com/openclaw/plugin-{i}-with-a-long-name"),
                "1.0.0",
            )
        })
        .collect();
    refused(AgentDocument { plugins, ..valid() }, "env");
}

#[test]
fn all_broken_rules_are_reported_at_once() {
    let doc = AgentDocument {
        agent_id: Some("Bad".into()),
        client_id: None,
        desired_state: Some("maybe".into()),
        ..AgentDocument::default()
    };
    let Err(e) = doc.validate() else {
        panic!("must be refused")
    };
    assert!(e.names("agent_id") && e.names("client_id") && e.names("desired_state"));
    assert_eq!(e.0.len(), 3, "{e}");
}

#[test]
fn content_hash_ignores_bookkeeping_and_spelling() {
    let a = accepted(valid());
    let b = accepted(AgentDocument {
        desired_state: Some("running".into()),
        generation: Some(7),
        managed_by: Some("cli".into()),
        ..valid()
    });
    assert_eq!(a.content_hash(), b.content_hash());
    let c = accepted(AgentDocument {
        desired_state: Some("stopped".into()),
        ..valid()
    });
    assert_ne!(a.content_hash(), c.content_hash());
    assert_eq!(a.content_hash().len(), 64);
}

#[test]
fn every_grammar_compiles() {
    assert!(super::DNS_LABEL.is_some());
    assert!(super::ENV_NAME.is_some());
    assert!(super::IMAGE.is_some());
    assert!(crate::is_label("acme-1") && !crate::is_label("Acme") && !crate::is_label("-a"));
    assert!(!crate::is_label(&"a".repeat(41)) && crate::is_label(&"a".repeat(40)));
}

#[test]
fn platform_names_and_prefixes_are_reserved_in_env_and_in_secret_keys() {
    for reserved in [
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "ECS_CONTAINER_METADATA_URI",
        "ECS_CONTAINER_METADATA_URI_V4",
        "AWS_EXECUTION_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "ECS_ANYTHING",
        "AWS_CONTAINER_ANYTHING",
        "AGENT_ID",
    ] {
        let env = BTreeMap::from([(reserved.to_string(), "x".to_string())]);
        let msg = refused(AgentDocument { env, ..valid() }, &format!("env.{reserved}"));
        assert!(msg.contains("reserved"), "{msg}");
        let msg = refused(
            AgentDocument {
                secret_keys: vec![reserved.into()],
                ..valid()
            },
            "secret_keys[0]",
        );
        assert!(msg.contains("reserved"), "{msg}");
    }
    let env = BTreeMap::from([("AWS_REGION".to_string(), "x".to_string())]);
    accepted(AgentDocument { env, ..valid() });
}

#[test]
fn secret_keys_beyond_what_the_description_holds_are_refused_naming_the_field() {
    let msg = refused(
        AgentDocument {
            secret_keys: vec!["K".repeat(crate::MAX_SECRET_KEY_LEN + 1)],
            ..valid()
        },
        "secret_keys[0]",
    );
    assert!(msg.contains("at most 64 characters"), "{msg}");
    let many: Vec<String> = (0..3000).map(|i| format!("KEY_{i}")).collect();
    let msg = refused(
        AgentDocument {
            secret_keys: many,
            ..valid()
        },
        "secret_keys",
    );
    assert!(msg.contains("at most 30 keys"), "{msg}");
    // The largest spec the limits allow still fits the Description.
    let largest: Vec<String> = (0..crate::MAX_SECRET_KEYS)
        .map(|i| format!("K{i:0>63}"))
        .collect();
    let spec = accepted(AgentDocument {
        secret_keys: largest.clone(),
        ..valid()
    });
    assert!(
        crate::render::secret_description(&spec.secret_keys).len()
            <= crate::render::SECRET_DESCRIPTION_LIMIT
    );
}

#[test]
fn bookkeeping_that_does_not_parse_is_refused_naming_it() {
    refused(
        AgentDocument {
            created_at: Some("long ago".into()),
            ..valid()
        },
        "created_at",
    );
    refused(
        AgentDocument {
            managed_by: Some("someone".into()),
            ..valid()
        },
        "managed_by",
    );
    refused(
        AgentDocument {
            idempotency_fingerprint: Some("abc".into()),
            ..valid()
        },
        "idempotency_fingerprint",
    );
    for by in ["api", "cli", "gitops:platform", "gitops:a.b_c-1"] {
        accepted(AgentDocument {
            managed_by: Some(by.into()),
            created_at: Some("2026-11-25T10:00:00.123Z".into()),
            generation: Some(3),
            ..valid()
        });
    }
}

#[test]
fn secret_keys_are_environment_variable_names() {
    for good in ["A", "_", "API_KEY", "K8S_TOKEN_2", "_X"] {
        assert_eq!(crate::secret_key_problem(good), None, "{good}");
    }
    for bad in ["", "a", "Api", "1KEY", "KEY-NAME", "KEY NAME", "KÉ", "key"] {
        assert!(crate::secret_key_problem(bad).is_some(), "{bad}");
    }
}
