use super::*;

fn id(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32]).unwrap()
}

const T0: u64 = 1_800_000_000_000;

fn owned(owner: &Identity, rest: &str) -> String {
    format!("@{}/{rest}", owner.agent_id())
}

fn grant(audience: &Identity, scope: Scope, rights: Rights, expires_ms: u64) -> Grant {
    Grant {
        audience: audience.agent_id(),
        scope,
        rights,
        not_before_ms: 0,
        expires_ms,
    }
}

#[test]
fn a_grant_round_trips_and_authorizes_only_what_it_says() {
    let (alice, bob, carol) = (id(1), id(2), id(3));
    let topic = owned(&alice, "notes");
    let cap = Capability::grant(
        &alice,
        bob.agent_id(),
        Scope::Topic(topic.clone()),
        Rights::READ | Right::Write,
        T0 + 1000,
    )
    .unwrap();
    let decoded = Capability::decode(cap.as_bytes()).unwrap();
    assert_eq!(decoded, cap);
    assert_eq!(decoded.issuer(), &alice.agent_id());
    assert_eq!(decoded.audience(), &bob.agent_id());
    let bob_id = bob.agent_id();
    assert_eq!(cap.authorizes(&bob_id, &topic, Right::Write, T0), Ok(()));
    let code = |agent: &AgentId, topic: &str, right, now| {
        cap.authorizes(agent, topic, right, now).unwrap_err().code()
    };
    assert_eq!(
        code(&carol.agent_id(), &topic, Right::Write, T0),
        "NOT_AUTHORIZED"
    );
    assert_eq!(code(&bob_id, "other", Right::Write, T0), "NOT_AUTHORIZED");
    assert_eq!(code(&bob_id, &topic, Right::Delegate, T0), "NOT_AUTHORIZED");
    assert_eq!(
        code(&bob_id, &topic, Right::Read, T0 + 1000),
        "CAPABILITY_EXPIRED"
    );
}

#[test]
fn delegation_narrows_and_never_widens() {
    let (alice, bob, carol) = (id(1), id(2), id(3));
    let docs = owned(&alice, "docs/");
    let root = Capability::grant(
        &alice,
        bob.agent_id(),
        Scope::Prefix(docs.clone()),
        Rights::ALL,
        T0 + 1000,
    )
    .unwrap();
    let inner = Scope::Topic(format!("{docs}plan"));
    let ok = root
        .delegate(&bob, grant(&carol, inner.clone(), Rights::READ, T0 + 500))
        .unwrap();
    assert_eq!(Capability::decode(ok.as_bytes()).unwrap(), ok);
    assert_eq!(ok.issuer(), &alice.agent_id());
    assert_eq!(ok.links().len(), 2);
    let refused = |holder: &Identity, g: Grant| root.delegate(holder, g).unwrap_err().code();
    let wider_scope = Scope::Prefix(owned(&alice, ""));
    let cases = [
        (&carol, grant(&carol, inner.clone(), Rights::READ, T0)),
        (&bob, grant(&carol, wider_scope, Rights::READ, T0)),
        (&bob, grant(&carol, inner.clone(), Rights::READ, T0 + 1001)),
        (&bob, grant(&carol, inner.clone(), Rights::NONE, T0)),
    ];
    for (holder, g) in cases {
        assert_eq!(refused(holder, g), "BAD_CAPABILITY");
    }
    // Carol got no delegate: she cannot pass it on.
    let dana = id(4);
    let error = ok
        .delegate(&carol, grant(&dana, inner.clone(), Rights::READ, T0))
        .unwrap_err();
    assert_eq!(error.code(), "BAD_CAPABILITY");
    // Rights only narrow: a read-only parent cannot yield write.
    let read_delegate = root
        .delegate(
            &bob,
            grant(
                &carol,
                inner.clone(),
                Rights::READ | Right::Delegate,
                T0 + 500,
            ),
        )
        .unwrap();
    let error = read_delegate
        .delegate(&carol, grant(&dana, inner, Rights::WRITE, T0))
        .unwrap_err();
    assert_eq!(error.code(), "BAD_CAPABILITY");
}

#[test]
fn chains_stop_at_four_links() {
    let ids: Vec<Identity> = (1..=6).map(id).collect();
    let scope = Scope::Prefix("@x/".into());
    let mut cap =
        Capability::grant(&ids[0], ids[1].agent_id(), scope.clone(), Rights::ALL, T0).unwrap();
    for i in 1..4 {
        cap = cap
            .delegate(&ids[i], grant(&ids[i + 1], scope.clone(), Rights::ALL, T0))
            .unwrap();
    }
    assert_eq!(cap.links().len(), 4);
    let error = cap
        .delegate(&ids[4], grant(&ids[5], scope, Rights::ALL, T0))
        .unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED");
}

#[test]
fn a_link_is_bound_to_its_parent() {
    // Bob holds two grants from Alice and delegates under the first; moving that link onto the
    // second (which it narrows just as well) breaks its signature.
    let (alice, bob, carol) = (id(1), id(2), id(3));
    let scope = Scope::Prefix("room/".into());
    let first = Capability::grant(&alice, bob.agent_id(), scope.clone(), Rights::ALL, T0).unwrap();
    let second =
        Capability::grant(&alice, bob.agent_id(), scope.clone(), Rights::ALL, T0 - 1).unwrap();
    let chain = first
        .delegate(&bob, grant(&carol, scope, Rights::READ, T0 - 2))
        .unwrap();
    let mut spliced = second.as_bytes().to_vec();
    spliced[1] = 2;
    spliced.extend_from_slice(&chain.as_bytes()[first.as_bytes().len()..]);
    assert_eq!(
        Capability::decode(&spliced).unwrap_err().code(),
        "BAD_SIGNATURE"
    );
}

#[test]
fn bad_bytes_get_their_codes_and_never_panic() {
    let (alice, bob) = (id(1), id(2));
    let cap = Capability::grant(
        &alice,
        bob.agent_id(),
        Scope::Topic("t".into()),
        Rights::READ,
        5,
    )
    .unwrap();
    let bytes = cap.as_bytes();
    let code = |b: &[u8]| Capability::decode(b).unwrap_err().code();
    assert_eq!(code(&[bytes, &[0u8][..]].concat()), "TRAILING_BYTES");
    assert_eq!(code(&bytes[..bytes.len() - 1]), "MALFORMED");
    assert_eq!(code(&[1, 0]), "MALFORMED");
    assert_eq!(code(&[1, 5]), "LIMIT_EXCEEDED");
    assert_eq!(code(&[2, 1]), "UNSUPPORTED_VERSION");
    assert_eq!(code(&vec![1; MAX_CAPABILITY_LEN + 1]), "LIMIT_EXCEEDED");
    for cut in 0..bytes.len() {
        assert!(Capability::decode(&bytes[..cut]).is_err());
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[cut] ^= 1 << bit;
            assert!(
                Capability::decode(&flipped).is_err(),
                "byte {cut} bit {bit}"
            );
        }
    }
}

#[test]
fn owned_topics_belong_to_their_agent() {
    let (alice, bob, carol) = (id(1), id(2), id(3));
    let a = alice.agent_id();
    assert_eq!(topic_owner(&format!("@{a}/x")), Some(a));
    assert_eq!(topic_owner(&format!("@{a}")), Some(a));
    assert_eq!(topic_owner(&format!("@{a}x")), None);
    assert_eq!(
        topic_owner(&format!("@{}", a.to_string().to_uppercase())),
        None
    );
    assert_eq!(topic_owner("tasks"), None);
    assert_eq!(topic_owner("@é"), None);
    let topic = owned(&alice, "inbox");
    assert_eq!(may_write(&topic, &a, &[], T0), Ok(()));
    assert_eq!(may_write("open", &bob.agent_id(), &[], T0), Ok(()));
    let code = |r: Result<()>| r.unwrap_err().code();
    assert_eq!(
        code(may_read(&topic, &bob.agent_id(), &[], T0)),
        "NOT_AUTHORIZED"
    );
    let from_alice = Capability::grant(
        &alice,
        bob.agent_id(),
        Scope::Topic(topic.clone()),
        Rights::WRITE,
        T0,
    )
    .unwrap();
    let from_carol = Capability::grant(
        &carol,
        bob.agent_id(),
        Scope::Topic(topic.clone()),
        Rights::ALL,
        T0 + 9,
    )
    .unwrap();
    let b = bob.agent_id();
    assert_eq!(
        may_write(&topic, &b, std::slice::from_ref(&from_alice), T0 - 1),
        Ok(())
    );
    assert_eq!(
        code(may_read(
            &topic,
            &b,
            std::slice::from_ref(&from_alice),
            T0 - 1
        )),
        "NOT_AUTHORIZED"
    );
    assert_eq!(
        code(may_write(&topic, &b, std::slice::from_ref(&from_carol), T0)),
        "NOT_AUTHORIZED"
    );
    assert_eq!(
        code(may_write(&topic, &b, &[from_carol, from_alice], T0)),
        "CAPABILITY_EXPIRED"
    );
}

#[test]
fn revoked_links_refuse_every_chain_that_holds_them() {
    let (alice, bob, carol) = (id(1), id(2), id(3));
    let topic = owned(&alice, "board");
    let scope = || Scope::Topic(topic.clone());
    let root = Capability::grant(
        &alice,
        bob.agent_id(),
        scope(),
        Rights::READ | Right::Delegate,
        T0 + 1000,
    )
    .unwrap();
    let chain = root
        .delegate(&bob, grant(&carol, scope(), Rights::READ, T0 + 1000))
        .unwrap();
    assert_eq!(chain.link_hashes().len(), 2);
    assert_eq!(chain.link_hashes()[0], root.link_hashes()[0]);
    assert_eq!(root.link_hashes()[0], root.links()[0].hash());

    // Bob revokes his link to carol (seq 7): carol's chain is out, bob's own grant is not.
    let mut authority = Authority::new(alice.agent_id());
    let revocation = Revocation::new(chain.clone(), 1).unwrap();
    let body = revocation.encode();
    assert_eq!(Revocation::decode(&body).unwrap(), revocation);
    let admission = authority
        .check(&topic, &bob.agent_id(), authority::kind::REVOKE, &body, T0)
        .unwrap();
    authority.admit(admission, 7, T0);
    let revoked = authority.revoked();
    assert_eq!(revoked.revoked_at(&chain), Some(7));
    assert_eq!(revoked.revoked_at(&root), None);
    let carol_id = carol.agent_id();
    let read = |caps: &[Capability]| {
        may_use(&topic, &carol_id, caps, Right::Read, T0, Some(revoked)).map_err(|e| e.code())
    };
    let alone = std::slice::from_ref(&chain);
    assert_eq!(read(alone), Err("CAPABILITY_REVOKED"));
    assert_eq!(may_read(&topic, &carol_id, alone, T0), Ok(()));
    assert_eq!(
        revoked_since(&topic, &carol_id, alone, Right::Read, T0, revoked),
        Some(7)
    );
    // Revoked outranks expired; a valid second chain still reads.
    let late = root
        .delegate(&bob, grant(&carol, scope(), Rights::READ, T0))
        .unwrap();
    assert_eq!(read(&[late, chain.clone()]), Err("CAPABILITY_REVOKED"));
    let other = root
        .delegate(&bob, grant(&carol, scope(), Rights::READ, T0 + 999))
        .unwrap();
    assert_eq!(read(&[chain.clone(), other.clone()]), Ok(()));
    assert_eq!(
        revoked_since(&topic, &carol_id, &[chain, other], Right::Read, T0, revoked),
        None
    );
    assert_eq!(
        revoked_since(&topic, &alice.agent_id(), &[], Right::Read, T0, revoked),
        None,
        "the owner"
    );

    // Bodies refuse other versions, a missing index and an index past the chain.
    assert_eq!(
        Revocation::decode(&[2, 0]).unwrap_err().code(),
        "UNSUPPORTED_VERSION"
    );
    assert_eq!(Revocation::decode(&[1]).unwrap_err().code(), "MALFORMED");
    let mut past = body.clone();
    past[1] = 2;
    assert_eq!(Revocation::decode(&past).unwrap_err().code(), "MALFORMED");
    assert_eq!(
        Revocation::new(root.clone(), 1).unwrap_err().code(),
        "BAD_INPUT"
    );
    assert_eq!(Presentation::decode(&[]).unwrap_err().code(), "MALFORMED");
    let presented = Presentation::new(root.clone()).encode();
    assert_eq!(
        Presentation::decode(&presented).unwrap().capability(),
        &root
    );
}
