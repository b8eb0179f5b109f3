//! Unit tests of the WireGuard module that need no root: keys and key files.

use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn tunnel_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tunnel>();
}

#[test]
fn keys_round_trip_and_never_show_the_private_key() {
    let k = PrivateKey::generate();
    let b64 = k.to_base64();
    assert_eq!(b64.len(), 44);
    let again = PrivateKey::from_base64(&b64).expect("parse");
    assert_eq!(again.public_key(), k.public_key());
    assert!(!format!("{k:?}").contains(&b64));
    assert!(!format!("{k}").contains(&b64));
    let public = k.public_key();
    assert_eq!(format!("{public:?}"), public.to_base64());
    assert_eq!(PublicKey::from_base64(&public.to_base64()).unwrap(), public);
    assert_ne!(PrivateKey::generate().public_key(), public);
}

#[test]
fn public_key_matches_wireguard_control() {
    // The same X25519 as `wg pubkey` (wireguard-control's Key::get_public).
    let k = PrivateKey::generate();
    let theirs = Key(*k.bytes()).get_public();
    assert_eq!(theirs.0, *k.public_key().bytes());
}

#[test]
fn bad_keys_are_refused_without_echoing_private_input() {
    let e = PrivateKey::from_base64("c2VjcmV0").unwrap_err().to_string();
    assert!(!e.contains("c2VjcmV0"), "{e}");
    assert!(e.contains("32"), "{e}");
    let e = PublicKey::from_base64("not base64!")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not base64"), "{e}");
}

#[test]
fn key_file_is_0600_in_a_0700_dir_and_loads_back() {
    let tmp = std::env::temp_dir().join(format!("rswg-keytest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let path = tmp.join("wireguard").join("private.key");
    assert!(PrivateKey::load(&path).unwrap().is_none());
    let k = PrivateKey::generate();
    k.save(&path).expect("save");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let loaded = PrivateKey::load(&path).unwrap().expect("a key");
    assert_eq!(loaded.public_key(), k.public_key());
    // Overwrite (rotation) keeps the mode; no temporary file is left.
    let k2 = PrivateKey::generate();
    k2.save(&path).expect("save again");
    assert_eq!(mode(&path), 0o600);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        PrivateKey::load(&path).unwrap().unwrap().public_key(),
        k2.public_key()
    );
    // A key file others can read is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = PrivateKey::load(&path).unwrap_err().to_string();
    assert!(e.contains("0644"), "{e}");
    std::fs::write(&path, "garbage").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = PrivateKey::load(&path).unwrap_err().to_string();
    assert!(e.contains("not a base64"), "{e}");
    assert!(!e.contains("garbage"), "{e}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn tunnel_arguments_are_checked() {
    assert!(check_name("rswgabcdefghijk").is_ok());
    assert!(check_name("rswgabcdefghijkl").is_err());
    assert!(check_name("").is_err());
    assert!(check_name("a/b").is_err());
    assert!(check_ip(Ipv4Addr::new(100, 127, 3, 4)).is_ok());
    let e = check_ip(Ipv4Addr::new(10, 0, 0, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("100.127.0.0/16"), "{e}");
    assert!(check_port(0).is_err());
}
