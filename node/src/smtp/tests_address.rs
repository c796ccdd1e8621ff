//! Unit tests for path splitting and parsing.

use super::address::{AddressError, Domain, Mailbox, Path, parse_mailbox, parse_path, split_path};

fn mailbox(path: &str) -> Mailbox {
    match parse_path(path, false) {
        Ok(Path::Mailbox(mailbox)) => mailbox,
        other => panic!("{path}: {other:?}"),
    }
}

fn error(path: &str) -> AddressError {
    parse_path(path, false).expect_err(path)
}

#[test]
fn split_path_respects_quotes() {
    assert_eq!(split_path("<a@b> SIZE=1"), Ok(("<a@b>", " SIZE=1")));
    assert_eq!(split_path("<\"a>b\"@c> X"), Ok(("<\"a>b\"@c>", " X")));
    assert_eq!(split_path("<\"a\\\">\"@c>"), Ok(("<\"a\\\">\"@c>", "")));
    assert_eq!(split_path("a@b"), Err(AddressError::Syntax));
    assert_eq!(split_path("<a@b"), Err(AddressError::Syntax));
    assert_eq!(split_path(""), Err(AddressError::Syntax));
}

#[test]
fn plain_and_null_paths() {
    assert_eq!(parse_path("<>", false), Ok(Path::Null));
    let parsed = mailbox("<User.Name+tag@Example.COM>");
    assert_eq!(parsed.local_part, "User.Name+tag");
    assert_eq!(parsed.domain, Domain::Name("Example.COM".to_owned()));
    assert!(parsed.is_in(&["example.com".to_owned()]));
    assert_eq!(parsed.to_string(), "User.Name+tag@Example.COM");
}

#[test]
fn trailing_dot_is_stripped() {
    let parsed = mailbox("<a@ours.test.>");
    assert_eq!(parsed.domain, Domain::Name("ours.test".to_owned()));
    assert_eq!(error("<a@ours.test..>"), AddressError::Syntax);
}

#[test]
fn source_route_is_dropped() {
    assert_eq!(
        mailbox("<@a.test,@b.test:u@d.test>").to_string(),
        "u@d.test"
    );
    assert_eq!(error("<@a.test,b.test:u@d.test>"), AddressError::Syntax);
    assert_eq!(error("<@a.test u@d.test>"), AddressError::Syntax);
    assert_eq!(error("<@:u@d.test>"), AddressError::Syntax);
}

#[test]
fn quoted_local_parts() {
    assert_eq!(mailbox("<\"john doe\"@d.test>").local_part, "\"john doe\"");
    assert_eq!(
        mailbox("<\"a@b\"@d.test>").domain,
        Domain::Name("d.test".to_owned())
    );
    assert_eq!(mailbox("<\"q\\\"x\"@d.test>").local_part, "\"q\\\"x\"");
    assert_eq!(mailbox("<\"\"@d.test>").local_part, "\"\"");
    assert_eq!(error("<\"open@d.test>"), AddressError::Syntax);
    assert_eq!(error("<\"a\"b@d.test>"), AddressError::Syntax);
    assert_eq!(error("<\"a\tb\"@d.test>"), AddressError::Syntax);
}

#[test]
fn routing_characters_stay_in_the_local_part() {
    let percent = mailbox("<user%victim.test@ours.test>");
    assert_eq!(percent.local_part, "user%victim.test");
    assert_eq!(percent.domain, Domain::Name("ours.test".to_owned()));
    assert_eq!(mailbox("<victim!user@ours.test>").local_part, "victim!user");
    assert_eq!(error("<user@victim.test@ours.test>"), AddressError::Syntax);
}

#[test]
fn address_literals() {
    let v4 = mailbox("<u@[192.0.2.1]>");
    assert_eq!(v4.domain, Domain::Literal("[192.0.2.1]".to_owned()));
    assert!(!v4.is_in(&["[192.0.2.1]".to_owned()]));
    assert!(matches!(
        mailbox("<u@[ipv6:::1]>").domain,
        Domain::Literal(_)
    ));
    assert_eq!(error("<u@[300.1.1.1]>"), AddressError::Syntax);
    assert_eq!(error("<u@[IPv6:192.0.2.1]>"), AddressError::Syntax);
    assert_eq!(error("<u@[tag:value]>"), AddressError::Syntax);
    assert_eq!(error("<u@[192.0.2.1>"), AddressError::Syntax);
}

#[test]
fn dot_string_and_domain_syntax() {
    for bad in [
        "<.a@d.test>",
        "<a.@d.test>",
        "<a..b@d.test>",
        "<@d.test>",
        "<a@>",
        "<a@.d>",
        "<a@d-.test>",
        "<a@-d.test>",
        "<a@d_x.test>",
        "<a(b)@d.test>",
        "<a@d.test",
        "a@d.test",
        "<a@d.test>>",
    ] {
        assert_eq!(error(bad), AddressError::Syntax, "{bad}");
    }
    assert_eq!(mailbox("<a@x>").domain, Domain::Name("x".to_owned()));
    assert_eq!(mailbox("<a@1-2.test>").local_part, "a");
}

#[test]
fn length_limits() {
    assert!(parse_path(&format!("<{}@d.test>", "l".repeat(64)), false).is_ok());
    assert_eq!(
        error(&format!("<{}@d.test>", "l".repeat(65))),
        AddressError::TooLong
    );
    let domain_255 = [
        "d".repeat(63),
        "d".repeat(63),
        "d".repeat(63),
        "d".repeat(63),
    ]
    .join(".");
    assert_eq!(domain_255.len(), 255);
    assert!(parse_mailbox(&format!("a@{domain_255}")).is_ok());
    assert_eq!(
        parse_mailbox(&format!("a@{domain_255}x")),
        Err(AddressError::TooLong)
    );
    let path_256 = format!("<a@{}>", &domain_255[..252]);
    assert_eq!(path_256.len(), 256);
    assert!(parse_path(&path_256, false).is_ok());
    assert_eq!(
        error(&format!("<a@{}>", &domain_255[..253])),
        AddressError::TooLong
    );
    assert_eq!(
        error(&format!("<a@{}.test>", "d".repeat(64))),
        AddressError::Syntax
    );
    assert_eq!(
        error(&format!("<{}>", "x".repeat(255))),
        AddressError::TooLong
    );
}

#[test]
fn non_ascii_needs_the_flag() {
    assert_eq!(error("<jörg@d.test>"), AddressError::NonAscii);
    assert_eq!(error("<a@bücher.test>"), AddressError::NonAscii);
    assert!(parse_path("<jörg@bücher.test>", true).is_ok());
    assert!(parse_path("<\"jö rg\"@d.test>", true).is_ok());
}
