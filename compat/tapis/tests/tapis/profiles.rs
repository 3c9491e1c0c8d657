//! `profiles.get_userinfo`, `get_profile`, `list_profiles`.

use crate::common::*;
use tessera_compat_tapis::tapis_authenticator::models::Profile;

fn field(p: &Option<Option<String>>) -> Option<&str> {
    p.as_ref().and_then(|v| v.as_deref())
}

fn check_profile(p: &Profile, username: &str) {
    assert_eq!(p.username.as_deref(), Some(username), "{p:?}");
    assert_eq!(field(&p.email), Some(format!("{username}@example.org").as_str()), "email: {p:?}");
    assert_eq!(field(&p.given_name), Some(format!("Given{username}").as_str()), "given_name: {p:?}");
    assert_eq!(field(&p.last_name), Some("Tester"), "last_name: {p:?}");
    let ct = field(&p.create_time).unwrap_or_else(|| panic!("create_time: {p:?}"));
    assert!(!ct.is_empty());
}

#[tokio::test]
async fn userinfo_profile_and_list() {
    let s = Server::start();
    let (_jwt, carol) = user_with_token(&s, "carol").await;
    let (_jwt, dave) = user_with_token(&s, "dave").await;

    let me = ok(carol.profiles.get_userinfo().await, "get_userinfo");
    check_profile(&me.result.expect("userinfo result"), "carol");

    let p = ok(dave.profiles.get_profile("carol").await, "get_profile carol");
    check_profile(&p.result.expect("profile result"), "carol");
    let p = ok(dave.profiles.get_profile("admin").await, "get_profile admin");
    assert_eq!(p.result.unwrap().username.as_deref(), Some("admin"));

    let all = ok(dave.profiles.list_profiles(None, None).await, "list_profiles").result.expect("list result");
    let names: Vec<&str> = all.iter().filter_map(|p| p.username.as_deref()).collect();
    for u in ["admin", "carol", "dave"] {
        assert!(names.contains(&u), "list_profiles should include {u}: {names:?}");
    }
    let carol_entry = all.iter().find(|p| p.username.as_deref() == Some("carol")).unwrap();
    check_profile(carol_entry, "carol");

    let first = ok(dave.profiles.list_profiles(Some(1), Some(0)).await, "list_profiles limit 1").result.unwrap();
    assert_eq!(first.len(), 1, "limit=1: {first:?}");
    let second = ok(dave.profiles.list_profiles(Some(1), Some(1)).await, "list_profiles offset 1").result.unwrap();
    assert_eq!(second.len(), 1, "limit=1 offset=1: {second:?}");
    assert_ne!(first[0].username, second[0].username, "offset moves the page");
    let none = ok(dave.profiles.list_profiles(Some(10), Some(100)).await, "list_profiles past the end").result.unwrap();
    assert!(none.is_empty(), "{none:?}");

    err(dave.profiles.get_profile("nobody").await, 404, "get_profile unknown user");
}

#[tokio::test]
async fn profiles_need_a_valid_token() {
    let s = Server::start();
    let (jwt, _) = user_with_token(&s, "carol").await;
    for (what, c) in [("no token", s.tapis(None)), ("garbage token", s.tapis(Some("garbage")))] {
        err(c.profiles.get_userinfo().await, 401, &format!("get_userinfo, {what}"));
        err(c.profiles.get_profile("carol").await, 401, &format!("get_profile, {what}"));
        err(c.profiles.list_profiles(None, None).await, 401, &format!("list_profiles, {what}"));
    }
    // A token whose signature does not match (claims of carol's token, another payload byte).
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    let (first, rest) = sig.split_at(1);
    let flipped = format!("{}{rest}", if first == "A" { "B" } else { "A" });
    parts[2] = flipped;
    let forged = parts.join(".");
    err(s.tapis(Some(&forged)).profiles.get_userinfo().await, 401, "get_userinfo, bad signature");
}

#[tokio::test]
async fn expired_token_is_401() {
    let s = Server::start_with_env(&[("TESSERA_ACCESS_TTL", "1")]);
    user(&s, "carol");
    let t = s.password_token("carol", PW).await;
    assert_eq!(t.access_token.expires_in, Some(1), "TESSERA_ACCESS_TTL=1");
    let c = s.tapis(Some(&access(&t)));
    sleep(2.5).await;
    err(c.profiles.get_userinfo().await, 401, "get_userinfo with an expired token");
}
