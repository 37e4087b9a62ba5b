//! The contract every backend must meet, written once against the traits.

use std::sync::Arc;

use tessera_core::Algorithm;
use tessera_core::keys::KeyState;
use tessera_core::store::{
    ApiKey, ApiKeyStore, CeremonyKind, EmailTokenPurpose, EmailTokenStore, KeyPurpose, KeyStore, KeyUsage, MfaStore,
    NewEmailToken, NewMfaChallenge, NewSession, NewUser, Passkey, PasskeyCeremony, Redemption, RefreshRotation,
    Rotation, RotationOutcome, SessionStore, StorageFault, StoreError, StoredKey, UserStore,
};

fn new_user(email: &str, username: &str) -> NewUser {
    NewUser {
        email: email.into(),
        email_normalized: email.to_lowercase(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        created_at: 1_000,
    }
}

fn new_session(id: &str, user_id: i64, jti: &str, now: i64) -> NewSession {
    NewSession {
        id: id.into(),
        user_id,
        refresh_jti: jti.into(),
        now,
        expires_at: now + 1_000,
        ip_address: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
    }
}

fn rotation<'a>(session_id: &'a str, presented: &'a str, new: &'a str, now: i64, grace: i64) -> Rotation<'a> {
    Rotation {
        session_id,
        presented_jti: presented,
        new_jti: new,
        now,
        new_expires_at: now + 1_000,
        grace_secs: grace,
    }
}

pub async fn user_store_contract(users: &dyn UserStore) {
    users.ping().await.unwrap();
    let alice = users.create(new_user("Alice@Example.com", "Alice")).await.unwrap();
    assert!(alice.id > 0);
    assert_eq!(alice.email, "Alice@Example.com");

    // Uniqueness is case-insensitive on both email and username.
    assert_eq!(
        users.create(new_user("alice@example.com", "other")).await,
        Err(StoreError::Conflict("email"))
    );
    assert_eq!(
        users.create(new_user("x@example.com", "ALICE")).await,
        Err(StoreError::Conflict("username"))
    );

    // Login by email or username, any case.
    for login in ["alice@example.com", "ALICE@EXAMPLE.COM", "alice", "Alice"] {
        assert_eq!(
            users.find_by_login(login).await.unwrap().map(|u| u.id),
            Some(alice.id),
            "{login}"
        );
    }
    assert_eq!(users.find_by_login("nobody").await.unwrap(), None);
    assert_eq!(users.find_by_id(alice.id).await.unwrap().unwrap().username, "Alice");
    assert_eq!(users.find_by_id(alice.id + 1000).await.unwrap(), None);

    users.update_password_hash(alice.id, "$argon2id$new").await.unwrap();
    assert_eq!(
        users.find_by_id(alice.id).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );

    assert!(users.set_disabled(alice.id, Some(5)).await.unwrap());
    assert_eq!(users.find_by_id(alice.id).await.unwrap().unwrap().disabled_at, Some(5));
    assert!(!users.set_disabled(alice.id + 1000, Some(5)).await.unwrap());

    let bob = users.create(new_user("bob@example.com", "bob")).await.unwrap();
    // A changed email is found by its new form, any case; a taken one is a conflict.
    assert!(
        users
            .update_email(bob.id, "Robert@Example.com", "robert@example.com")
            .await
            .unwrap()
    );
    assert_eq!(
        users.find_by_login("robert@example.com").await.unwrap().map(|u| u.id),
        Some(bob.id)
    );
    assert_eq!(users.find_by_login("bob@example.com").await.unwrap(), None);
    assert_eq!(
        users
            .update_email(bob.id, "ALICE@example.com", "alice@example.com")
            .await,
        Err(StoreError::Conflict("email"))
    );
    assert!(
        !users
            .update_email(bob.id + 1000, "nobody@example.com", "nobody@example.com")
            .await
            .unwrap()
    );
    let listed: Vec<i64> = users.list(10, 0).await.unwrap().iter().map(|u| u.id).collect();
    assert_eq!(listed, vec![alice.id, bob.id]);
    assert_eq!(users.list(1, 1).await.unwrap()[0].id, bob.id);

    // Roles (G4): granted once, listed in byte order, removed; none for an unknown account.
    assert_eq!(users.roles(bob.id).await.unwrap(), Vec::<String>::new());
    assert!(users.add_role(bob.id, "support", 1).await.unwrap());
    assert!(users.add_role(bob.id, "admin", 2).await.unwrap());
    assert!(!users.add_role(bob.id, "admin", 3).await.unwrap(), "already held");
    assert!(
        !users.add_role(bob.id + 1000, "admin", 3).await.unwrap(),
        "no such account"
    );
    assert_eq!(
        users.roles(bob.id).await.unwrap(),
        vec!["admin".to_owned(), "support".to_owned()]
    );
    assert_eq!(users.roles(alice.id).await.unwrap(), Vec::<String>::new());
    assert!(users.remove_role(bob.id, "support").await.unwrap());
    assert!(!users.remove_role(bob.id, "support").await.unwrap());
    assert_eq!(users.roles(bob.id).await.unwrap(), vec!["admin".to_owned()]);

    assert!(users.delete(bob.id).await.unwrap());
    assert!(!users.delete(bob.id).await.unwrap());
    assert_eq!(users.find_by_id(bob.id).await.unwrap(), None);
    // Deleting the account deleted its roles with it.
    assert_eq!(users.roles(bob.id).await.unwrap(), Vec::<String>::new());
}

/// `rotate_for_refresh` (one statement on the SQL stores) decides as the account lookup followed
/// by `rotate` would.
async fn refresh_rotation_contract(users: &dyn UserStore, sessions: &dyn SessionStore) {
    let user = users.create(new_user("r@example.com", "refresher")).await.unwrap();
    sessions
        .create(new_session("r1", user.id, "k1", 100))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    let refresh =
        |presented, new, now| sessions.rotate_for_refresh(users, user.id, rotation("r1", presented, new, now, 10));

    let RefreshRotation::Attempted {
        username,
        outcome: RotationOutcome::Rotated(rotated),
    } = refresh("k1", "k2", 110).await.unwrap()
    else {
        panic!("current token of an active account must rotate");
    };
    assert_eq!(username, "refresher");
    assert_eq!(
        (rotated.current_jti.as_str(), rotated.previous_jti.as_deref()),
        ("k2", Some("k1"))
    );
    assert_eq!((rotated.refresh_issued_at, rotated.expires_at), (110, 1_110));

    // The just-replaced token: grace, as with `rotate`.
    let RefreshRotation::Attempted {
        outcome: RotationOutcome::WithinGrace(grace),
        ..
    } = refresh("k1", "k3", 112).await.unwrap()
    else {
        panic!("just-replaced token within grace");
    };
    assert_eq!(grace.current_jti, "k2");

    // A disabled account: nothing rotates, whatever the token.
    assert!(users.set_disabled(user.id, Some(120)).await.unwrap());
    assert_eq!(
        refresh("k2", "k4", 121).await.unwrap(),
        RefreshRotation::AccountInactive
    );
    assert_eq!(sessions.find("r1").await.unwrap().unwrap().current_jti, "k2");
    // Enabled again, the current token rotates; a session of another account never does.
    assert!(users.set_disabled(user.id, None).await.unwrap());
    assert!(matches!(
        refresh("k2", "k5", 122).await.unwrap(),
        RefreshRotation::Attempted {
            outcome: RotationOutcome::Rotated(_),
            ..
        }
    ));
    assert_eq!(
        sessions
            .rotate_for_refresh(users, user.id + 1_000, rotation("r1", "k5", "k6", 123, 10))
            .await
            .unwrap(),
        RefreshRotation::AccountInactive
    );
    // A spent token is reuse: the family is revoked.
    assert!(matches!(
        refresh("k1", "k7", 200).await.unwrap(),
        RefreshRotation::Attempted {
            outcome: RotationOutcome::ReuseDetected(_),
            ..
        }
    ));
    assert!(sessions.find("r1").await.unwrap().unwrap().revoked_at.is_some());
}

/// A session is created only for an account that exists and is enabled, in the same statement
/// as the check (`users disable` racing a login): otherwise `None`, and nothing is inserted.
async fn disabled_account_gets_no_session_contract(users: &dyn UserStore, sessions: &dyn SessionStore) {
    let user = users.create(new_user("late@example.com", "late")).await.unwrap();
    assert!(users.set_disabled(user.id, Some(50)).await.unwrap());
    assert_eq!(
        sessions.create(new_session("d1", user.id, "x1", 100)).await.unwrap(),
        None
    );
    assert_eq!(sessions.find("d1").await.unwrap(), None, "nothing inserted");
    assert_eq!(
        sessions
            .create(new_session("d2", user.id + 1_000, "x2", 100))
            .await
            .unwrap(),
        None,
        "no such account"
    );
    assert_eq!(sessions.find("d2").await.unwrap(), None);
    assert!(users.set_disabled(user.id, None).await.unwrap());
    let created = sessions.create(new_session("d1", user.id, "x1", 101)).await.unwrap();
    assert_eq!(created.map(|s| s.current_jti), Some("x1".to_owned()));
    assert!(sessions.find("d1").await.unwrap().is_some());
}

/// A password change sets the hash and revokes every live session but the one kept, at once;
/// a disabled or unknown account changes nothing.
async fn password_change_contract(users: &dyn UserStore, sessions: &dyn SessionStore) {
    let user = users.create(new_user("pw@example.com", "pwchange")).await.unwrap();
    let other = users.create(new_user("pw2@example.com", "pwother")).await.unwrap();
    for (id, owner) in [
        ("pw-a", user.id),
        ("pw-b", user.id),
        ("pw-c", user.id),
        ("pw-o", other.id),
    ] {
        sessions
            .create(new_session(id, owner, &format!("{id}-j"), 100))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(sessions.revoke(user.id, "pw-c", 110).await.unwrap());
    let revoked = users
        .change_password(user.id, "$argon2id$new", Some("pw-a"), 120)
        .await
        .unwrap()
        .expect("an enabled account");
    assert_eq!(revoked, vec!["pw-b".to_owned()], "only the live other session");
    assert_eq!(
        users.find_by_id(user.id).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    assert_eq!(sessions.find("pw-a").await.unwrap().unwrap().revoked_at, None, "kept");
    assert_eq!(sessions.find("pw-b").await.unwrap().unwrap().revoked_at, Some(120));
    assert_eq!(
        sessions.find("pw-c").await.unwrap().unwrap().revoked_at,
        Some(110),
        "unchanged"
    );
    assert_eq!(
        sessions.find("pw-o").await.unwrap().unwrap().revoked_at,
        None,
        "not another user's"
    );

    // Without a session to keep (an API key asked): every live session goes.
    let revoked = users
        .change_password(user.id, "$argon2id$newer", None, 130)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, vec!["pw-a".to_owned()]);

    // A disabled account, an unknown one: nothing changes.
    assert!(users.set_disabled(other.id, Some(140)).await.unwrap());
    assert_eq!(users.change_password(other.id, "$x", None, 150).await.unwrap(), None);
    assert_eq!(
        users.find_by_id(other.id).await.unwrap().unwrap().password_hash,
        other.password_hash
    );
    assert_eq!(sessions.find("pw-o").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(users.change_password(i64::MAX, "$x", None, 150).await.unwrap(), None);
    // Leaves no live session behind for the counts of the contract that follows.
    assert!(sessions.revoke(other.id, "pw-o", 160).await.unwrap());
}

pub async fn session_store_contract(users: &dyn UserStore, sessions: &dyn SessionStore) {
    refresh_rotation_contract(users, sessions).await;
    password_change_contract(users, sessions).await;
    let user = users.create(new_user("s@example.com", "sessions")).await.unwrap();
    let created = sessions
        .create(new_session("s1", user.id, "j1", 100))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    assert_eq!(created.current_jti, "j1");
    assert_eq!(created.previous_jti, None);
    assert_eq!(sessions.find("s1").await.unwrap().unwrap(), created);

    // Rotation: the current token rotates.
    let RotationOutcome::Rotated(rotated) = sessions.rotate(rotation("s1", "j1", "j2", 110, 10)).await.unwrap() else {
        panic!("current token must rotate");
    };
    assert_eq!(
        (rotated.current_jti.as_str(), rotated.previous_jti.as_deref()),
        ("j2", Some("j1"))
    );
    assert_eq!(rotated.refresh_issued_at, 110);

    // The replaced token within the grace window: nothing changes, the current chain is named.
    let RotationOutcome::WithinGrace(grace) = sessions.rotate(rotation("s1", "j1", "j3", 115, 10)).await.unwrap()
    else {
        panic!("just-replaced token within grace");
    };
    assert_eq!(grace.current_jti, "j2");

    // Outside the grace window it is reuse: the family is revoked.
    let outcome = sessions.rotate(rotation("s1", "j1", "j4", 200, 10)).await.unwrap();
    assert!(matches!(outcome, RotationOutcome::ReuseDetected(_)), "{outcome:?}");
    assert!(sessions.find("s1").await.unwrap().unwrap().revoked_at.is_some());
    // And the current token of the revoked family is dead too.
    assert_eq!(
        sessions.rotate(rotation("s1", "j2", "j5", 201, 10)).await.unwrap(),
        RotationOutcome::Invalid
    );

    // An older token (neither current nor previous) is reuse even within seconds.
    sessions
        .create(new_session("s2", user.id, "a1", 300))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    sessions.rotate(rotation("s2", "a1", "a2", 301, 10)).await.unwrap();
    sessions.rotate(rotation("s2", "a2", "a3", 302, 10)).await.unwrap();
    assert!(matches!(
        sessions.rotate(rotation("s2", "a1", "a9", 303, 10)).await.unwrap(),
        RotationOutcome::ReuseDetected(_)
    ));

    // The grace window is half-open: exactly `grace` seconds after the rotation it is over.
    sessions
        .create(new_session("sg", user.id, "g1", 300))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    sessions.rotate(rotation("sg", "g1", "g2", 300, 10)).await.unwrap();
    assert!(matches!(
        sessions.rotate(rotation("sg", "g1", "g3", 309, 10)).await.unwrap(),
        RotationOutcome::WithinGrace(_)
    ));
    assert!(matches!(
        sessions.rotate(rotation("sg", "g1", "g3", 310, 10)).await.unwrap(),
        RotationOutcome::ReuseDetected(_)
    ));
    // With no grace at all, a spent token is reuse even in the same second.
    sessions
        .create(new_session("s0", user.id, "z1", 300))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    sessions.rotate(rotation("s0", "z1", "z2", 300, 0)).await.unwrap();
    assert!(matches!(
        sessions.rotate(rotation("s0", "z1", "z3", 300, 0)).await.unwrap(),
        RotationOutcome::ReuseDetected(_)
    ));

    // Unknown and expired sessions are invalid.
    assert_eq!(
        sessions.rotate(rotation("nope", "x", "y", 300, 10)).await.unwrap(),
        RotationOutcome::Invalid
    );
    sessions
        .create(new_session("s3", user.id, "e1", 400))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    assert_eq!(
        sessions.rotate(rotation("s3", "e1", "e2", 5_000, 10)).await.unwrap(),
        RotationOutcome::Invalid
    );

    // Listing, revoking one, revoking all.
    sessions
        .create(new_session("s4", user.id, "b1", 500))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    sessions
        .create(new_session("s5", user.id, "c1", 501))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    let active: Vec<String> = sessions
        .list_active(user.id, 600)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    // s3 (created at 400) is still live at 600; s1 and s2 are revoked.
    assert_eq!(active, vec!["s5", "s4", "s3"]);
    assert_eq!(sessions.count_active(600).await.unwrap(), 3);
    assert_eq!(sessions.count_active(1_450).await.unwrap(), 2, "s3 expired at 1400");
    let other = users.create(new_user("o@example.com", "other")).await.unwrap();
    assert!(
        !sessions.revoke(other.id, "s4", 600).await.unwrap(),
        "someone else's session"
    );
    assert!(sessions.revoke(user.id, "s4", 600).await.unwrap());
    assert!(!sessions.revoke(user.id, "s4", 601).await.unwrap(), "already revoked");
    sessions
        .create(new_session("s6", user.id, "d1", 602))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    let mut revoked = sessions.revoke_all(user.id, 610).await.unwrap();
    revoked.sort();
    assert_eq!(revoked, vec!["s3", "s5", "s6"]);
    assert!(sessions.list_active(user.id, 611).await.unwrap().is_empty());
    let since: Vec<String> = sessions
        .revoked_since(600)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        since.contains(&"s4".to_string()) && since.contains(&"s5".to_string()) && since.contains(&"s6".to_string())
    );
    assert!(!since.contains(&"s1".to_string()), "revoked at 200, before 600");

    // Deleting the user deletes the sessions with it.
    sessions
        .create(new_session("s7", other.id, "f1", 700))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    users.delete(other.id).await.unwrap();
    assert_eq!(sessions.find("s7").await.unwrap(), None);

    disabled_account_gets_no_session_contract(users, sessions).await;
}

/// Of many concurrent rotations of one token, exactly one rotates; the rest see the grace
/// window, and the session ends with one current token.
pub async fn concurrent_rotation_contract(users: Arc<dyn UserStore>, sessions: Arc<dyn SessionStore>) {
    let user = users.create(new_user("c@example.com", "concurrent")).await.unwrap();
    sessions
        .create(new_session("cs", user.id, "t0", 100))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sessions = Arc::clone(&sessions);
        tasks.push(tokio::spawn(async move {
            let new = format!("t1-{i}");
            sessions.rotate(rotation("cs", "t0", &new, 101, 10)).await.unwrap()
        }));
    }
    let mut rotated = 0;
    let mut grace = 0;
    for task in tasks {
        match task.await.unwrap() {
            RotationOutcome::Rotated(_) => rotated += 1,
            RotationOutcome::WithinGrace(_) => grace += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((rotated, grace), (1, 19));
    let session = sessions.find("cs").await.unwrap().unwrap();
    assert!(session.current_jti.starts_with("t1-"));
    assert_eq!(session.previous_jti.as_deref(), Some("t0"));
}

fn stored_key(kid: &str, purpose: KeyPurpose, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        purpose,
        alg: Algorithm::HS256,
        state: KeyState::Signing,
        created_at,
        deactivated_at: None,
        activates_at: created_at + 10,
        retired_at: None,
        private_key: vec![7; 32],
    }
}

pub async fn key_store_contract(keys: &dyn KeyStore) {
    use tessera_core::store::InsertCondition::{Always, IfNone, IfNoneCreatedAfter};
    assert!(keys.list(KeyPurpose::Access).await.unwrap().is_empty());
    assert!(
        keys.insert(stored_key("a1", KeyPurpose::Access, 1), IfNone)
            .await
            .unwrap()
    );
    let first = keys.list(KeyPurpose::Access).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].private_key.clone(), first[0].activates_at, first[0].retired_at),
        (vec![7; 32], 11, None)
    );
    // A second first-start insert (another instance starting at the same time) changes nothing.
    assert!(
        !keys
            .insert(stored_key("a2", KeyPurpose::Access, 2), IfNone)
            .await
            .unwrap()
    );
    // Purposes are separate.
    assert!(
        keys.insert(stored_key("r1", KeyPurpose::Refresh, 1), IfNone)
            .await
            .unwrap()
    );
    // Scheduled rotation: only if nothing newer than the cutoff exists.
    assert!(
        !keys
            .insert(stored_key("a3", KeyPurpose::Access, 100), IfNoneCreatedAfter(0))
            .await
            .unwrap()
    );
    assert!(
        keys.insert(stored_key("a3", KeyPurpose::Access, 100), IfNoneCreatedAfter(50))
            .await
            .unwrap()
    );
    assert!(
        keys.insert(stored_key("a4", KeyPurpose::Access, 200), Always)
            .await
            .unwrap()
    );
    let kids: Vec<String> = keys
        .list(KeyPurpose::Access)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec!["a1", "a3", "a4"]);
    // A duplicate kid is refused, not overwritten.
    assert!(
        keys.insert(stored_key("a4", KeyPurpose::Access, 300), Always)
            .await
            .is_err()
    );
    // Retire and delete.
    assert!(keys.retire("a1", 500).await.unwrap());
    assert_eq!(keys.list(KeyPurpose::Access).await.unwrap()[0].retired_at, Some(500));
    assert!(!keys.retire("nope", 500).await.unwrap());
    assert!(keys.delete("a1").await.unwrap());
    assert!(!keys.delete("a1").await.unwrap());
    assert_eq!(keys.list(KeyPurpose::Access).await.unwrap().len(), 2);
    assert_eq!(keys.list(KeyPurpose::Refresh).await.unwrap().len(), 1);
}

/// What [`seed_for_storage_faults`] wrote while the storage took writes.
pub struct Seeded {
    pub user: tessera_core::store::User,
    pub session: String,
    pub jti: String,
}

/// An account with a live session and an access key, written while the storage takes writes.
pub async fn seed_for_storage_faults<S>(store: &S) -> Seeded
where
    S: UserStore + SessionStore + KeyStore,
{
    let user = UserStore::create(store, new_user("seed@example.com", "seed"))
        .await
        .unwrap();
    SessionStore::create(store, new_session("seed-s", user.id, "seed-j", 100))
        .await
        .unwrap()
        .expect("an enabled account gets its session");
    assert!(
        KeyStore::insert(
            store,
            stored_key("seed-k", KeyPurpose::Access, 1),
            tessera_core::store::InsertCondition::Always
        )
        .await
        .unwrap()
    );
    Seeded {
        user,
        session: "seed-s".into(),
        jti: "seed-j".into(),
    }
}

/// More than a few pages of data: a write carrying it must allocate pages, so it fails on a
/// full database whatever room the pages already in use have left.
pub fn bulky(tag: char) -> String {
    std::iter::repeat_n(tag, 64 * 1024).collect()
}

fn assert_storage_fault<T: std::fmt::Debug>(result: Result<T, StoreError>, fault: StorageFault, what: &str) {
    match result {
        Err(StoreError::StorageUnavailable { fault: found, .. }) if found == fault => {}
        other => panic!("{what}: expected StorageUnavailable({fault}), got {other:?}"),
    }
}

/// A full database: every write that needs space is `StorageUnavailable(Full)` and leaves
/// nothing behind; readiness (`ping`) then fails until a write commits again.
pub async fn full_storage_contract<S>(store: &S, seeded: &Seeded)
where
    S: UserStore + SessionStore + KeyStore,
{
    use tessera_core::store::InsertCondition::Always;
    let fault = StorageFault::Full;
    let big = bulky('f');
    let mut user = new_user("full@example.com", "full");
    user.password_hash = big.clone();
    assert_storage_fault(UserStore::create(store, user).await, fault, "users.create");
    assert_eq!(
        store.find_by_login("full@example.com").await.unwrap(),
        None,
        "no half-written account"
    );

    assert_storage_fault(
        store.update_password_hash(seeded.user.id, &big).await,
        fault,
        "update_password_hash",
    );
    assert_eq!(
        store.find_by_id(seeded.user.id).await.unwrap().unwrap().password_hash,
        seeded.user.password_hash
    );

    let mut session = new_session("full-s", seeded.user.id, "full-j", 100);
    session.user_agent = Some(big.clone());
    assert_storage_fault(SessionStore::create(store, session).await, fault, "sessions.create");
    assert_eq!(store.find("full-s").await.unwrap(), None, "no half-written session");

    assert_storage_fault(
        store
            .rotate(rotation(&seeded.session, &seeded.jti, &big, 110, 10))
            .await,
        fault,
        "rotate",
    );
    assert_storage_fault(
        store
            .rotate_for_refresh(
                store,
                seeded.user.id,
                rotation(&seeded.session, &seeded.jti, &big, 110, 10),
            )
            .await,
        fault,
        "rotate_for_refresh",
    );
    let kept = store.find(&seeded.session).await.unwrap().unwrap();
    assert_eq!(
        (kept.current_jti.as_str(), kept.previous_jti),
        (seeded.jti.as_str(), None),
        "not rotated"
    );

    let mut key = stored_key("full-k", KeyPurpose::Access, 5);
    key.private_key = big.clone().into_bytes();
    assert_storage_fault(KeyStore::insert(store, key, Always).await, fault, "keys.insert");
    let kids: Vec<String> = KeyStore::list(store, KeyPurpose::Access)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec!["seed-k"], "no half-written key");

    // Readiness: the store saw the failure, and its write probe cannot commit either.
    assert_storage_fault(store.ping().await, fault, "ping while full");
}

/// Storage that takes no write at all (read-only): every write method is
/// `StorageUnavailable(ReadOnly)` and changes nothing; reads still answer; `ping` fails.
pub async fn read_only_storage_contract<S>(store: &S, seeded: &Seeded)
where
    S: UserStore + SessionStore + KeyStore,
{
    use tessera_core::store::InsertCondition::{Always, IfNone, IfNoneCreatedAfter};
    let fault = StorageFault::ReadOnly;
    let id = seeded.user.id;
    assert_storage_fault(
        UserStore::create(store, new_user("ro@example.com", "ro")).await,
        fault,
        "users.create",
    );
    assert_storage_fault(
        store.update_password_hash(id, "$argon2id$x").await,
        fault,
        "update_password_hash",
    );
    assert_storage_fault(
        store.update_email(id, "ro@example.com", "ro@example.com").await,
        fault,
        "update_email",
    );
    assert_storage_fault(store.set_disabled(id, Some(7)).await, fault, "set_disabled");
    assert_storage_fault(UserStore::delete(store, id).await, fault, "users.delete");
    assert_storage_fault(
        SessionStore::create(store, new_session("ro-s", id, "ro-j", 100)).await,
        fault,
        "sessions.create",
    );
    assert_storage_fault(
        store
            .rotate(rotation(&seeded.session, &seeded.jti, "ro-2", 110, 10))
            .await,
        fault,
        "rotate",
    );
    assert_storage_fault(
        store
            .rotate_for_refresh(store, id, rotation(&seeded.session, &seeded.jti, "ro-2", 110, 10))
            .await,
        fault,
        "rotate_for_refresh",
    );
    assert_storage_fault(store.revoke(id, &seeded.session, 120).await, fault, "revoke");
    assert_storage_fault(store.revoke_all(id, 120).await, fault, "revoke_all");
    for condition in [Always, IfNone, IfNoneCreatedAfter(0)] {
        assert_storage_fault(
            KeyStore::insert(store, stored_key("ro-k", KeyPurpose::Refresh, 5), condition).await,
            fault,
            "keys.insert",
        );
    }
    assert_storage_fault(store.retire("seed-k", 9).await, fault, "keys.retire");
    assert_storage_fault(KeyStore::delete(store, "seed-k").await, fault, "keys.delete");

    // Nothing changed, and reads still answer.
    assert_eq!(store.find_by_id(id).await.unwrap().as_ref(), Some(&seeded.user));
    assert_eq!(store.find_by_login("ro@example.com").await.unwrap(), None);
    let session = store.find(&seeded.session).await.unwrap().unwrap();
    assert_eq!(
        (session.current_jti.as_str(), session.revoked_at),
        (seeded.jti.as_str(), None)
    );
    assert_eq!(store.find("ro-s").await.unwrap(), None);
    let keys = KeyStore::list(store, KeyPurpose::Access).await.unwrap();
    assert_eq!((keys.len(), keys[0].retired_at), (1, None));
    assert!(KeyStore::list(store, KeyPurpose::Refresh).await.unwrap().is_empty());
    assert_storage_fault(store.ping().await, fault, "ping while read-only");
}

/// Once the storage takes writes again (space freed, made writable), without reopening:
/// readiness recovers and every kind of write goes through.
pub async fn storage_recovery_contract<S>(store: &S, seeded: &Seeded)
where
    S: UserStore + SessionStore + KeyStore,
{
    store.ping().await.expect("ready again once writes commit");
    let big = bulky('r');
    let mut user = new_user("back@example.com", "back");
    user.password_hash = big.clone();
    let back = UserStore::create(store, user).await.unwrap();
    assert_eq!(store.find_by_id(back.id).await.unwrap().unwrap().password_hash, big);
    let RotationOutcome::Rotated(rotated) = store
        .rotate(rotation(&seeded.session, &seeded.jti, "back-j", 130, 10))
        .await
        .unwrap()
    else {
        panic!("the current token rotates once writes work");
    };
    assert_eq!(rotated.current_jti, "back-j");
    assert_eq!(
        store.find(&seeded.session).await.unwrap().unwrap().current_jti,
        "back-j"
    );
    assert!(
        KeyStore::insert(
            store,
            stored_key("back-k", KeyPurpose::Refresh, 6),
            tessera_core::store::InsertCondition::IfNone
        )
        .await
        .unwrap()
    );
    assert!(store.revoke(seeded.user.id, &seeded.session, 140).await.unwrap());
}

fn api_key(id: &str, user_id: i64, hash: u8, now: i64) -> ApiKey {
    ApiKey {
        id: id.to_owned(),
        user_id,
        name: format!("key {id}"),
        prefix: "tsk_abcdefgh".to_owned(),
        key_hash: vec![hash; 32],
        scopes: "profile:read".to_owned(),
        created_at: now,
        expires_at: None,
        revoked_at: None,
        rate_limit: Some("100/minute".to_owned()),
        quota: None,
        last_used_at: None,
        last_used_ip: None,
        rotated_to: None,
        updated_at: now,
    }
}

/// API keys (G3): create for an enabled owner only, find by hash with the owner's state,
/// list the live ones, rotate with grace in one transaction, revoke, the poll, usage.
pub async fn api_key_store_contract(users: &dyn UserStore, keys: &dyn ApiKeyStore) {
    let owner = users.create(new_user("keys@example.com", "keyowner")).await.unwrap();
    let other = users.create(new_user("other@example.com", "otherowner")).await.unwrap();
    let now = 1_000;

    // Create, then find by hash: the whole row back, and the owner enabled.
    assert!(keys.create_key(api_key("k1", owner.id, 1, now)).await.unwrap());
    let found = keys.find_key_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.key, api_key("k1", owner.id, 1, now));
    assert_eq!(found.username, "keyowner");
    assert!(!found.owner_disabled);
    assert_eq!(keys.find_key_by_hash(&[9; 32]).await.unwrap(), None);
    // No key for a missing owner; a hash is unique.
    assert!(!keys.create_key(api_key("k0", owner.id + 1000, 2, now)).await.unwrap());
    assert!(keys.create_key(api_key("k1dup", owner.id, 1, now)).await.is_err());
    // Keys belong to their owner only.
    assert_eq!(keys.find_key(other.id, "k1").await.unwrap(), None);
    assert_eq!(keys.find_key(owner.id, "k1").await.unwrap().unwrap().id, "k1");
    assert!(!keys.revoke_key(other.id, "k1", now).await.unwrap());

    // Rotation: the new key is stored, the old one lives until the end of the grace period.
    assert!(
        keys.rotate_key(
            owner.id,
            "k1",
            api_key("k2", owner.id, 2, now + 10),
            now + 100,
            now + 10
        )
        .await
        .unwrap()
    );
    let old = keys.find_key(owner.id, "k1").await.unwrap().unwrap();
    assert_eq!(old.rotated_to.as_deref(), Some("k2"));
    assert_eq!(old.revoked_at, Some(now + 100));
    assert!(old.is_live(now + 99) && !old.is_live(now + 100));
    assert!(
        keys.find_key_by_hash(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .key
            .is_live(now + 100)
    );
    // A key already rotated is not rotated again (nothing stored).
    assert!(
        !keys
            .rotate_key(
                owner.id,
                "k1",
                api_key("k3", owner.id, 3, now + 20),
                now + 200,
                now + 20
            )
            .await
            .unwrap()
    );
    assert_eq!(keys.find_key_by_hash(&[3; 32]).await.unwrap(), None);
    let listed: Vec<String> = keys
        .list_keys(owner.id, now + 20)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["k1", "k2"]);
    let listed: Vec<String> = keys
        .list_keys(owner.id, now + 100)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["k2"]);
    assert_eq!(keys.keys_changed_since(now + 10).await.unwrap(), ["k1"]);

    // Revocation: from now on, once; the poll sees it.
    assert!(keys.revoke_key(owner.id, "k2", now + 300).await.unwrap());
    assert!(!keys.revoke_key(owner.id, "k2", now + 301).await.unwrap());
    assert!(
        !keys
            .find_key_by_hash(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .key
            .is_live(now + 300)
    );
    assert_eq!(keys.keys_changed_since(now + 300).await.unwrap(), ["k2"]);
    assert!(keys.keys_changed_since(now + 301).await.unwrap().is_empty());
    // A revoked key cannot be rotated back to life.
    assert!(
        !keys
            .rotate_key(
                owner.id,
                "k2",
                api_key("k4", owner.id, 4, now + 400),
                now + 500,
                now + 400
            )
            .await
            .unwrap()
    );

    // Usage: batched, never moving backwards.
    assert!(keys.create_key(api_key("k5", owner.id, 5, now)).await.unwrap());
    keys.record_usage(&[
        KeyUsage {
            id: "k5".into(),
            at: now + 50,
            ip: "192.0.2.1".into(),
        },
        KeyUsage {
            id: "gone".into(),
            at: now + 50,
            ip: "192.0.2.1".into(),
        },
    ])
    .await
    .unwrap();
    keys.record_usage(&[KeyUsage {
        id: "k5".into(),
        at: now + 40,
        ip: "192.0.2.9".into(),
    }])
    .await
    .unwrap();
    let used = keys.find_key(owner.id, "k5").await.unwrap().unwrap();
    assert_eq!(
        (used.last_used_at, used.last_used_ip.as_deref()),
        (Some(now + 50), Some("192.0.2.1"))
    );

    // A disabled owner: found with the flag set, and no new key or rotation for them.
    assert!(users.set_disabled(owner.id, Some(now + 600)).await.unwrap());
    assert!(keys.find_key_by_hash(&[5; 32]).await.unwrap().unwrap().owner_disabled);
    // The poll names the keys of an account disabled since (their cached copies must go).
    assert!(
        keys.keys_changed_since(now + 600)
            .await
            .unwrap()
            .contains(&"k5".to_owned())
    );
    assert!(!keys.create_key(api_key("k6", owner.id, 6, now + 600)).await.unwrap());
    assert!(
        !keys
            .rotate_key(
                owner.id,
                "k5",
                api_key("k7", owner.id, 7, now + 600),
                now + 700,
                now + 600
            )
            .await
            .unwrap()
    );
    assert_eq!(keys.find_key(owner.id, "k5").await.unwrap().unwrap().rotated_to, None);
    // A deleted owner takes their keys along.
    assert!(users.delete(owner.id).await.unwrap());
    assert_eq!(keys.find_key_by_hash(&[5; 32]).await.unwrap(), None);
}

/// Service accounts (G3): rows of `users` with an unusable password hash, listed apart, owning
/// keys like any account, whose lookup says the owner is a service account.
pub async fn service_account_contract(users: &dyn UserStore, keys: &dyn ApiKeyStore) {
    use tessera_core::store::{SERVICE_ACCOUNT_PASSWORD_HASH, service_account_email};
    let human = users.create(new_user("human@example.com", "human")).await.unwrap();
    assert!(!human.service_account);
    let svc = users.create_service_account("CI-Bot", 2_000).await.unwrap();
    assert!(svc.service_account);
    assert_eq!(svc.username, "CI-Bot");
    assert_eq!(svc.email, service_account_email("CI-Bot"));
    assert_eq!(svc.password_hash, SERVICE_ACCOUNT_PASSWORD_HASH);
    assert_eq!(svc.created_at, 2_000);
    assert_eq!(svc.disabled_at, None);
    // Found by name like any account (case-insensitively), and flagged.
    let found = users.find_by_login("ci-bot").await.unwrap().unwrap();
    assert_eq!(found, svc);
    assert_eq!(users.find_by_id(svc.id).await.unwrap().unwrap(), svc);
    // Names are unique among all accounts.
    assert_eq!(
        users.create_service_account("HUMAN", 2_001).await,
        Err(StoreError::Conflict("username"))
    );
    // (Both its username and its email are taken: which one a backend reports varies.)
    assert!(matches!(
        users.create_service_account("ci-bot", 2_001).await,
        Err(StoreError::Conflict(_))
    ));
    let second = users.create_service_account("deployer", 2_002).await.unwrap();
    assert_eq!(
        users.list_service_accounts().await.unwrap(),
        vec![svc.clone(), second.clone()]
    );

    // Its keys say so at lookup; a human's do not; disabling it disables them.
    assert!(keys.create_key(api_key("svc-k", svc.id, 41, 2_000)).await.unwrap());
    assert!(keys.create_key(api_key("human-k", human.id, 42, 2_000)).await.unwrap());
    let lookup = keys.find_key_by_hash(&[41; 32]).await.unwrap().unwrap();
    assert!(lookup.owner_service_account && !lookup.owner_disabled);
    assert_eq!(lookup.username, "CI-Bot");
    assert!(
        !keys
            .find_key_by_hash(&[42; 32])
            .await
            .unwrap()
            .unwrap()
            .owner_service_account
    );
    assert!(users.set_disabled(svc.id, Some(3_000)).await.unwrap());
    assert!(keys.find_key_by_hash(&[41; 32]).await.unwrap().unwrap().owner_disabled);
    assert!(
        keys.keys_changed_since(3_000)
            .await
            .unwrap()
            .contains(&"svc-k".to_owned())
    );
    assert_eq!(users.list_service_accounts().await.unwrap()[0].disabled_at, Some(3_000));
}

/// Deleting an account takes its sessions, keys and roles with it in one go, and leaves their
/// ids where the revocation poll finds them; old tombstones are purged.
pub async fn account_deletion_contract(users: &dyn UserStore, sessions: &dyn SessionStore, keys: &dyn ApiKeyStore) {
    let user = users.create(new_user("del@example.com", "deleteme")).await.unwrap();
    let kept = users.create(new_user("keep@example.com", "keepme")).await.unwrap();
    for (id, owner) in [
        ("del-a", user.id),
        ("del-b", user.id),
        ("del-x", user.id),
        ("keep-a", kept.id),
    ] {
        sessions
            .create(new_session(id, owner, &format!("{id}-j"), 100))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(sessions.revoke(user.id, "del-x", 105).await.unwrap());
    assert!(keys.create_key(api_key("k-del", user.id, 0xd1, 100)).await.unwrap());
    assert!(keys.create_key(api_key("k-keep", kept.id, 0xd2, 100)).await.unwrap());
    assert!(users.add_role(user.id, "ops", 100).await.unwrap());

    let deleted = users
        .delete_account(user.id, 200, 0)
        .await
        .unwrap()
        .expect("the account existed");
    assert_eq!(
        deleted.sessions,
        vec!["del-a".to_owned(), "del-b".to_owned()],
        "live ones"
    );
    assert_eq!(deleted.api_keys, vec!["k-del".to_owned()]);
    assert_eq!(users.find_by_id(user.id).await.unwrap(), None);
    assert_eq!(users.find_by_login("del@example.com").await.unwrap(), None);
    assert_eq!(
        sessions.find("del-a").await.unwrap(),
        None,
        "no personal data left in sessions"
    );
    assert_eq!(keys.find_key(user.id, "k-del").await.unwrap(), None);
    assert!(users.roles(user.id).await.unwrap().is_empty());
    // The other account is untouched.
    assert!(sessions.find("keep-a").await.unwrap().is_some());
    assert!(keys.find_key(kept.id, "k-keep").await.unwrap().is_some());

    // The poll sees the deleted credentials.
    let revoked: Vec<String> = sessions
        .revoked_since(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, at)| *at == 200)
        .map(|(id, _)| id)
        .collect();
    assert!(
        revoked.contains(&"del-a".to_owned()) && revoked.contains(&"del-b".to_owned()),
        "{revoked:?}"
    );
    assert!(
        keys.keys_changed_since(200)
            .await
            .unwrap()
            .contains(&"k-del".to_owned())
    );
    assert!(
        !keys
            .keys_changed_since(201)
            .await
            .unwrap()
            .contains(&"k-del".to_owned())
    );

    // The address is free again; a second deletion finds nothing.
    let again = users.create(new_user("del@example.com", "deleteme")).await.unwrap();
    assert_ne!(again.id, user.id);
    assert_eq!(users.delete_account(user.id, 300, 0).await.unwrap(), None);
    // Deleting that one purges tombstones older than the cut-off.
    users.delete_account(again.id, 400, 300).await.unwrap().unwrap();
    assert!(
        !keys.keys_changed_since(0).await.unwrap().contains(&"k-del".to_owned()),
        "purged"
    );
    assert!(sessions.revoke(kept.id, "keep-a", 500).await.unwrap());
}

fn email_token(hash: u8, user_id: i64, purpose: EmailTokenPurpose, email: &str, now: i64) -> NewEmailToken {
    NewEmailToken {
        token_hash: vec![hash; 32],
        user_id,
        purpose,
        email: email.into(),
        created_at: now,
        expires_at: now + 100,
    }
}

pub async fn email_token_contract(users: &dyn UserStore, sessions: &dyn SessionStore, tokens: &dyn EmailTokenStore) {
    use EmailTokenPurpose::{ChangeEmail, ResetPassword, VerifyEmail};
    let user = users.create(new_user("mail@example.com", "mailer")).await.unwrap();
    let other = users.create(new_user("taken@example.com", "other")).await.unwrap();
    assert_eq!(user.email_verified_at, None, "a new account is unverified");

    // Verification: found without being consumed, then redeemed exactly once.
    tokens
        .issue_email_token(email_token(1, user.id, VerifyEmail, "mail@example.com", 100))
        .await
        .unwrap();
    let found = tokens.find_email_token(&[1; 32], 150).await.unwrap().expect("live");
    assert_eq!(
        (found.user_id, found.purpose, found.email.as_str()),
        (user.id, VerifyEmail, "mail@example.com")
    );
    assert!(
        tokens.find_email_token(&[1; 32], 150).await.unwrap().is_some(),
        "finding consumes nothing"
    );
    assert_eq!(
        tokens
            .redeem_email_token(&[1; 32], Redemption::ResetPassword { password_hash: "x" }, 150)
            .await
            .unwrap(),
        None,
        "a token is redeemed only for its purpose"
    );
    let redeemed = tokens
        .redeem_email_token(&[1; 32], Redemption::VerifyEmail, 150)
        .await
        .unwrap()
        .expect("redeemed");
    assert_eq!(redeemed.user_id, user.id);
    assert_eq!(
        users.find_by_id(user.id).await.unwrap().unwrap().email_verified_at,
        Some(150)
    );
    assert_eq!(
        tokens
            .redeem_email_token(&[1; 32], Redemption::VerifyEmail, 151)
            .await
            .unwrap(),
        None,
        "single use"
    );
    assert_eq!(tokens.find_email_token(&[1; 32], 151).await.unwrap(), None);

    // Expiry.
    tokens
        .issue_email_token(email_token(2, user.id, VerifyEmail, "mail@example.com", 200))
        .await
        .unwrap();
    assert_eq!(
        tokens.find_email_token(&[2; 32], 300).await.unwrap(),
        None,
        "expired at expires_at"
    );
    assert_eq!(
        tokens
            .redeem_email_token(&[2; 32], Redemption::VerifyEmail, 300)
            .await
            .unwrap(),
        None
    );

    // A new token voids the older ones of the same purpose, not those of another.
    tokens
        .issue_email_token(email_token(3, user.id, ResetPassword, "mail@example.com", 400))
        .await
        .unwrap();
    tokens
        .issue_email_token(email_token(4, user.id, VerifyEmail, "mail@example.com", 400))
        .await
        .unwrap();
    tokens
        .issue_email_token(email_token(5, user.id, ResetPassword, "mail@example.com", 401))
        .await
        .unwrap();
    assert_eq!(
        tokens.find_email_token(&[3; 32], 402).await.unwrap(),
        None,
        "voided by the newer one"
    );
    assert!(tokens.find_email_token(&[4; 32], 402).await.unwrap().is_some());

    // A reset sets the hash and revokes every live session, in one go.
    for id in ["mail-a", "mail-b"] {
        sessions
            .create(new_session(id, user.id, &format!("{id}-j"), 400))
            .await
            .unwrap()
            .unwrap();
    }
    let reset = tokens
        .redeem_email_token(&[5; 32], Redemption::ResetPassword { password_hash: "$new" }, 410)
        .await
        .unwrap()
        .expect("redeemed");
    let mut revoked = reset.revoked_sessions.clone();
    revoked.sort();
    assert_eq!(revoked, vec!["mail-a".to_owned(), "mail-b".to_owned()]);
    assert_eq!(users.find_by_id(user.id).await.unwrap().unwrap().password_hash, "$new");
    assert!(sessions.find("mail-a").await.unwrap().unwrap().revoked_at.is_some());

    // An email change replaces the address (verified); the old address's links go with it.
    tokens
        .issue_email_token(email_token(6, user.id, ChangeEmail, "New@example.com", 500))
        .await
        .unwrap();
    let changed = tokens
        .redeem_email_token(
            &[6; 32],
            Redemption::ChangeEmail {
                email_normalized: "new@example.com",
            },
            510,
        )
        .await
        .unwrap()
        .expect("redeemed");
    assert_eq!(
        (changed.email.as_str(), changed.previous_email.as_str()),
        ("New@example.com", "mail@example.com")
    );
    let now_user = users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        (now_user.email.as_str(), now_user.email_verified_at),
        ("New@example.com", Some(510))
    );
    assert!(users.find_by_login("new@example.com").await.unwrap().is_some());
    assert_eq!(
        tokens.find_email_token(&[4; 32], 510).await.unwrap(),
        None,
        "old address's verification voided"
    );
    // A verification link for an address the account no longer has changes nothing.
    tokens
        .issue_email_token(email_token(7, user.id, VerifyEmail, "mail@example.com", 520))
        .await
        .unwrap();
    assert_eq!(
        tokens
            .redeem_email_token(&[7; 32], Redemption::VerifyEmail, 521)
            .await
            .unwrap(),
        None
    );

    // An address another account took meanwhile is a conflict, and nothing is consumed.
    tokens
        .issue_email_token(email_token(8, user.id, ChangeEmail, "taken@example.com", 600))
        .await
        .unwrap();
    assert_eq!(
        tokens
            .redeem_email_token(
                &[8; 32],
                Redemption::ChangeEmail {
                    email_normalized: "taken@example.com"
                },
                601
            )
            .await,
        Err(StoreError::Conflict("email"))
    );
    assert!(
        tokens.find_email_token(&[8; 32], 602).await.unwrap().is_some(),
        "rolled back whole"
    );
    assert_eq!(
        users.find_by_id(other.id).await.unwrap().unwrap().email,
        "taken@example.com"
    );

    // A disabled account's tokens redeem nothing; a deleted account's tokens are gone.
    tokens
        .issue_email_token(email_token(9, other.id, ResetPassword, "taken@example.com", 700))
        .await
        .unwrap();
    assert!(users.set_disabled(other.id, Some(701)).await.unwrap());
    assert_eq!(
        tokens
            .redeem_email_token(&[9; 32], Redemption::ResetPassword { password_hash: "$x" }, 702)
            .await
            .unwrap(),
        None
    );
    assert!(users.delete_account(other.id, 703, 0).await.unwrap().is_some());
    assert_eq!(tokens.find_email_token(&[9; 32], 704).await.unwrap(), None);
}

fn challenge(tag: u8, user_id: i64, now: i64) -> NewMfaChallenge {
    NewMfaChallenge {
        token_hash: vec![tag; 32],
        user_id,
        ip_address: Some("192.0.2.7".into()),
        user_agent: Some("test".into()),
        created_at: now,
        expires_at: now + 300,
    }
}

/// The second factor (C3): pending and confirmed TOTP, the replay-refusing step update, recovery
/// codes used once and voided by a new set, challenges with an attempt budget, and everything
/// going with the account.
pub async fn mfa_contract(users: &dyn UserStore, mfa: &dyn MfaStore) {
    let user = users.create(new_user("mfa@example.com", "mfa")).await.unwrap();
    let other = users.create(new_user("mfa2@example.com", "mfa2")).await.unwrap();
    let codes = |tag: u8| -> Vec<Vec<u8>> { (0..10u8).map(|i| vec![tag, i]).collect() };

    // Nothing enrolled: nothing to use, confirm or refresh.
    assert_eq!(mfa.find_totp(user.id).await.unwrap(), None);
    assert!(!mfa.use_totp_step(user.id, 10).await.unwrap());
    assert!(!mfa.confirm_totp(user.id, 10, &codes(1), 100).await.unwrap());
    assert!(!mfa.replace_recovery_codes(user.id, &codes(1), 100).await.unwrap());
    assert!(!mfa.delete_mfa(user.id).await.unwrap());

    // Pending: stored, replaced by a new start, not usable for login before confirmation.
    assert!(mfa.start_totp(user.id, b"first secret", 100).await.unwrap());
    assert!(mfa.start_totp(user.id, b"second secret", 110).await.unwrap());
    let pending = mfa.find_totp(user.id).await.unwrap().expect("pending factor");
    assert_eq!(
        (
            pending.secret.as_slice(),
            pending.confirmed_at,
            pending.created_at,
            pending.last_step
        ),
        (b"second secret".as_slice(), None, 110, -1)
    );
    assert!(
        !mfa.use_totp_step(user.id, 5).await.unwrap(),
        "a pending factor logs nobody in"
    );
    assert!(!mfa.replace_recovery_codes(user.id, &codes(1), 100).await.unwrap());

    // Confirmed with its first step, and the recovery codes stored with it.
    assert!(mfa.confirm_totp(user.id, 50, &codes(1), 120).await.unwrap());
    assert!(
        !mfa.confirm_totp(user.id, 51, &codes(2), 121).await.unwrap(),
        "confirmed once"
    );
    let factor = mfa.find_totp(user.id).await.unwrap().unwrap();
    assert_eq!((factor.confirmed_at, factor.last_step), (Some(120), 50));
    assert_eq!(mfa.recovery_codes_left(user.id).await.unwrap(), 10);
    assert!(
        !mfa.start_totp(user.id, b"third", 130).await.unwrap(),
        "a confirmed factor is not replaced"
    );
    assert_eq!(mfa.find_totp(user.id).await.unwrap().unwrap().secret, b"second secret");

    // Steps: only ever forward. The confirming step itself is spent.
    assert!(!mfa.use_totp_step(user.id, 50).await.unwrap());
    assert!(!mfa.use_totp_step(user.id, 49).await.unwrap());
    assert!(mfa.use_totp_step(user.id, 52).await.unwrap());
    assert!(!mfa.use_totp_step(user.id, 52).await.unwrap(), "a replay is refused");
    assert!(!mfa.use_totp_step(user.id, 51).await.unwrap(), "an older step too");
    assert!(mfa.use_totp_step(user.id, 53).await.unwrap());
    assert!(!mfa.use_totp_step(other.id, 60).await.unwrap());

    // Recovery codes: once each, only the account's own; a new set voids the old.
    assert!(mfa.consume_recovery_code(user.id, &[1, 3]).await.unwrap());
    assert!(!mfa.consume_recovery_code(user.id, &[1, 3]).await.unwrap(), "used once");
    assert!(
        !mfa.consume_recovery_code(other.id, &[1, 4]).await.unwrap(),
        "not another's"
    );
    assert_eq!(mfa.recovery_codes_left(user.id).await.unwrap(), 9);
    assert!(mfa.replace_recovery_codes(user.id, &codes(2), 140).await.unwrap());
    assert_eq!(mfa.recovery_codes_left(user.id).await.unwrap(), 10);
    assert!(
        !mfa.consume_recovery_code(user.id, &[1, 4]).await.unwrap(),
        "the old set is void"
    );
    assert!(mfa.consume_recovery_code(user.id, &[2, 4]).await.unwrap());

    // Challenges: an attempt budget counted atomically, expiry, single use.
    mfa.create_mfa_challenge(challenge(0xa1, user.id, 1_000)).await.unwrap();
    for attempt in 1..=3 {
        let found = mfa
            .attempt_mfa_challenge(&[0xa1; 32], 3, 1_010)
            .await
            .unwrap()
            .expect("live");
        assert_eq!(
            (found.user_id, found.attempts, found.expires_at),
            (user.id, attempt, 1_300)
        );
        assert_eq!(found.ip_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(found.user_agent.as_deref(), Some("test"));
    }
    assert_eq!(
        mfa.attempt_mfa_challenge(&[0xa1; 32], 3, 1_010).await.unwrap(),
        None,
        "the budget is spent"
    );
    assert!(mfa.consume_mfa_challenge(&[0xa1; 32], 1_010).await.unwrap());
    mfa.create_mfa_challenge(challenge(0xa2, user.id, 1_000)).await.unwrap();
    assert_eq!(
        mfa.attempt_mfa_challenge(&[0xa2; 32], 5, 1_300).await.unwrap(),
        None,
        "expired"
    );
    assert!(!mfa.consume_mfa_challenge(&[0xa2; 32], 1_300).await.unwrap(), "expired");
    mfa.create_mfa_challenge(challenge(0xa3, user.id, 1_000)).await.unwrap();
    assert!(
        mfa.attempt_mfa_challenge(&[0xa3; 32], 5, 1_001)
            .await
            .unwrap()
            .is_some()
    );
    assert!(mfa.consume_mfa_challenge(&[0xa3; 32], 1_001).await.unwrap());
    assert!(
        !mfa.consume_mfa_challenge(&[0xa3; 32], 1_001).await.unwrap(),
        "single use"
    );
    assert_eq!(mfa.attempt_mfa_challenge(&[0xa3; 32], 5, 1_001).await.unwrap(), None);
    assert_eq!(mfa.attempt_mfa_challenge(&[0xff; 32], 5, 1_001).await.unwrap(), None);
    // A new challenge sweeps the expired ones.
    mfa.create_mfa_challenge(challenge(0xa4, user.id, 5_000)).await.unwrap();
    assert!(!mfa.consume_mfa_challenge(&[0xa2; 32], 0).await.unwrap(), "swept");

    // Removal takes the factor, the codes and the open challenges.
    assert!(mfa.delete_mfa(user.id).await.unwrap());
    assert_eq!(mfa.find_totp(user.id).await.unwrap(), None);
    assert_eq!(mfa.recovery_codes_left(user.id).await.unwrap(), 0);
    assert_eq!(mfa.attempt_mfa_challenge(&[0xa4; 32], 5, 5_001).await.unwrap(), None);
    assert!(!mfa.delete_mfa(user.id).await.unwrap());

    // Enrolled again, then the account is deleted: every row goes with it.
    assert!(mfa.start_totp(user.id, b"again", 6_000).await.unwrap());
    assert!(mfa.confirm_totp(user.id, 200, &codes(3), 6_000).await.unwrap());
    mfa.create_mfa_challenge(challenge(0xa5, user.id, 6_000)).await.unwrap();
    users.delete_account(user.id, 6_001, 0).await.unwrap().expect("deleted");
    assert_eq!(mfa.find_totp(user.id).await.unwrap(), None);
    assert_eq!(mfa.recovery_codes_left(user.id).await.unwrap(), 0);
    assert_eq!(mfa.attempt_mfa_challenge(&[0xa5; 32], 5, 6_001).await.unwrap(), None);
}

fn passkey(id: &[u8], user_id: i64, created_at: i64) -> Passkey {
    Passkey {
        credential_id: id.to_vec(),
        user_id,
        name: "Laptop".into(),
        user_handle: vec![9; 16],
        public_key: b"public key".to_vec(),
        state: vec![0, 0, 0, 0, 0, 0, 0],
        sign_count: 0,
        transports: 4,
        created_at,
        last_used_at: None,
    }
}

fn ceremony(id: &[u8], kind: CeremonyKind, user_id: Option<i64>, now: i64) -> PasskeyCeremony {
    PasskeyCeremony {
        id_hash: id.to_vec(),
        kind,
        user_id,
        mfa_token_hash: user_id.map(|_| b"token hash".to_vec()),
        state: b"verifier state".to_vec(),
        created_at: now,
        expires_at: now + 300,
    }
}

pub async fn passkey_contract(users: &dyn UserStore, mfa: &dyn MfaStore) {
    let user = users.create(new_user("pk@example.com", "pk")).await.unwrap();
    let other = users.create(new_user("pk2@example.com", "pk2")).await.unwrap();

    // Ceremonies: single use, of one kind, not after they expire; any account or none.
    mfa.create_ceremony(ceremony(b"c1", CeremonyKind::Registration, Some(user.id), 100))
        .await
        .unwrap();
    mfa.create_ceremony(ceremony(b"c2", CeremonyKind::Login, None, 100))
        .await
        .unwrap();
    mfa.create_ceremony(ceremony(b"c3", CeremonyKind::SecondFactor, Some(user.id), 100))
        .await
        .unwrap();
    assert_eq!(
        mfa.take_ceremony(b"c1", CeremonyKind::Login, 101).await.unwrap(),
        None,
        "a ceremony of another kind is not found"
    );
    let taken = mfa
        .take_ceremony(b"c1", CeremonyKind::Registration, 101)
        .await
        .unwrap()
        .expect("live ceremony");
    assert_eq!(taken, ceremony(b"c1", CeremonyKind::Registration, Some(user.id), 100));
    assert_eq!(
        mfa.take_ceremony(b"c1", CeremonyKind::Registration, 102).await.unwrap(),
        None,
        "single use"
    );
    let login = mfa
        .take_ceremony(b"c2", CeremonyKind::Login, 399)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((login.user_id, login.mfa_token_hash), (None, None));
    assert_eq!(
        mfa.take_ceremony(b"c3", CeremonyKind::SecondFactor, 400).await.unwrap(),
        None,
        "expired at expires_at"
    );

    // Credentials: unique across accounts, listed oldest first, found by id.
    assert!(mfa.list_passkeys(user.id).await.unwrap().is_empty());
    assert!(mfa.add_passkey(passkey(b"cred-b", user.id, 200)).await.unwrap());
    assert!(mfa.add_passkey(passkey(b"cred-a", user.id, 210)).await.unwrap());
    assert!(
        !mfa.add_passkey(passkey(b"cred-a", other.id, 220)).await.unwrap(),
        "a credential id is registered once"
    );
    let listed = mfa.list_passkeys(user.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.credential_id.as_slice()).collect::<Vec<_>>(),
        vec![b"cred-b".as_slice(), b"cred-a".as_slice()]
    );
    assert_eq!(listed[0], passkey(b"cred-b", user.id, 200));
    assert!(mfa.list_passkeys(other.id).await.unwrap().is_empty());
    assert_eq!(mfa.find_passkey(b"cred-a").await.unwrap().unwrap().user_id, user.id);
    assert_eq!(mfa.find_passkey(b"nope").await.unwrap(), None);

    // A use is recorded only over the state it was checked against (compare and set).
    let old = vec![0u8; 7];
    let new = vec![1u8, 0, 5, 0, 0, 0, 0];
    assert!(mfa.record_passkey_use(b"cred-a", &old, &new, 5, 300).await.unwrap());
    assert!(
        !mfa.record_passkey_use(b"cred-a", &old, &new, 5, 301).await.unwrap(),
        "a second use checked against the old state loses"
    );
    let used = mfa.find_passkey(b"cred-a").await.unwrap().unwrap();
    assert_eq!((used.state, used.sign_count, used.last_used_at), (new, 5, Some(300)));

    // Removal: only the owner's, then all of them with the open ceremonies.
    assert!(!mfa.delete_passkey(other.id, b"cred-a").await.unwrap());
    assert!(mfa.delete_passkey(user.id, b"cred-a").await.unwrap());
    assert!(!mfa.delete_passkey(user.id, b"cred-a").await.unwrap());
    mfa.create_ceremony(ceremony(b"c4", CeremonyKind::SecondFactor, Some(user.id), 500))
        .await
        .unwrap();
    assert_eq!(mfa.delete_passkeys(user.id).await.unwrap(), 1);
    assert!(mfa.list_passkeys(user.id).await.unwrap().is_empty());
    assert_eq!(
        mfa.take_ceremony(b"c4", CeremonyKind::SecondFactor, 501).await.unwrap(),
        None
    );

    // Deleting the account removes its passkeys and ceremonies (ON DELETE CASCADE).
    assert!(mfa.add_passkey(passkey(b"cred-c", other.id, 600)).await.unwrap());
    mfa.create_ceremony(ceremony(b"c5", CeremonyKind::Registration, Some(other.id), 600))
        .await
        .unwrap();
    users.delete_account(other.id, 601, 0).await.unwrap().expect("deleted");
    assert_eq!(mfa.find_passkey(b"cred-c").await.unwrap(), None);
    assert_eq!(
        mfa.take_ceremony(b"c5", CeremonyKind::Registration, 602).await.unwrap(),
        None
    );
}
