//! Unit tests of the DER walking, the certificate times and the wording
//! helpers.

use super::describe::{presented_name, words};
use super::*;

#[test]
fn der_walking_never_panics_and_finds_names() {
    assert_eq!(tlv(&[0x30, 0x03, 1, 2, 3, 9]), Some((0x30, &[1u8, 2, 3][..], &[9u8][..])));
    assert_eq!(tlv(&[0x30, 0x81, 0x01, 7]), Some((0x30, &[7u8][..], &[][..])));
    assert_eq!(tlv(&[0x30, 0x05, 1]), None);
    assert_eq!(tlv(&[0x30, 0x80]), None);
    assert_eq!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    assert_eq!(tlv(&[]), None);
    for n in 0..64 {
        assert!(!self_issued(&vec![0x30; n]));
    }
}

#[test]
fn der_times() {
    assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
    assert_eq!(der_time(0x17, b"210101000000Z"), Some(1_609_459_200));
    assert_eq!(der_time(0x18, b"20210101000000Z"), Some(1_609_459_200));
    assert_eq!(der_time(0x18, b"20240229235959Z"), Some(1_709_251_199));
    assert_eq!(der_time(0x18, b"99991231235959Z"), Some(253_402_300_799));
    assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
    assert_eq!(der_time(0x17, b"500101000000Z"), Some(-631_152_000));
    for bad in [&b"2101010000Z"[..], b"210101000000", b"211301000000Z", b"21010100000aZ", b""] {
        assert_eq!(der_time(0x17, bad), None, "{bad:?}");
    }
    assert_eq!(der_time(0x04, b"210101000000Z"), None);
}

#[test]
fn names_and_words() {
    assert_eq!(presented_name("DnsName(\"www.example.test\")"), "www.example.test");
    assert_eq!(presented_name("IpAddress(127.0.0.1)"), "127.0.0.1");
    assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    assert_eq!(words("HandshakeFailure"), "handshake failure");
    assert_eq!(words("UnknownCA"), "unknown ca");
}
