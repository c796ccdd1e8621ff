use super::*;

fn has(features: &[String], f: &str) -> bool {
    features.iter().any(|x| x == f)
}

const PLAIN: &str = "Received: from relay.collector.example ([192.0.2.1]) by mx.example\n\
From: \"Online Pharmacy\" <deals@mail.Pharma-Shop.co.uk>\n\
To: yyyy@netnoteinc.com\n\
Message-ID: <123@host.collector.example>\n\
X-Mailer: Microsoft Outlook Express 6.00\n\
List-Id: <spam.example.org>\n\
Subject: =?utf-8?Q?Cheap_meds!?=\n\
Content-Type: text/plain; charset=us-ascii\n\n\
Buy cheap meds now, only $20! Visit http://www.pharma-shop.co.uk/buy?id=1 \
2024 Supercalifragilisticexpialidocious-extra don't wait.\n";

#[test]
fn plain_message_features() {
    let f = features(PLAIN.as_bytes());
    for want in [
        "fn:online",
        "fn:pharmacy",
        "fd:pharma-shop.co.uk",
        "xm:microsoft",
        "xm:outlook",
        "xm:express",
        "ct:text/plain",
        "cs:us-ascii",
        "cs:utf-8",
        "s:!",
        "s:cheap",
        "s:meds",
        "w:buy",
        "w:cheap",
        "w:$20",
        "w:don't",
        "u:pharma-shop.co.uk",
        "skip:s40",
    ] {
        assert!(has(&f, want), "{want} missing in {f:?}");
    }
}

#[test]
fn trace_recipient_list_and_id_headers_give_nothing() {
    let f = features(PLAIN.as_bytes());
    for banned in [
        "collector",
        "192",
        "yyyy",
        "netnoteinc",
        "123@",
        "spam.example",
        "6.00",
    ] {
        assert!(
            !f.iter().any(|x| x.contains(banned)),
            "{banned} leaked: {f:?}"
        );
    }
    // Pure numbers and short words are not words.
    assert!(!has(&f, "w:2024") && !has(&f, "w:id"));
}

#[test]
fn html_only_message_is_decoded() {
    let raw = "From: a@b.example\nSubject: hi\nContent-Type: text/html\n\n\
<html><body><p>Fr<!-- x -->ee <b>mon</b>ey &amp; more</p>\
<a href=\"http://click.example.net/x\">here</a><img src=http://198.51.100.1/t.gif></body></html>\n";
    let f = features(raw.as_bytes());
    for want in [
        "h:only",
        "w:free",
        "w:money",
        "w:more",
        "u:example.net",
        "u:ip",
        "h:img",
        "h:comment-split",
    ] {
        assert!(has(&f, want), "{want} missing in {f:?}");
    }
    assert!(
        !f.iter().any(|x| x.contains("href") || x.contains("body")),
        "{f:?}"
    );
}

#[test]
fn multipart_alternative_and_attachments() {
    let raw = "From: a@b.example\nSubject: report\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\n\
Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
Caf=E9 report attached\n--B\n\
Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\n\
Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\nContent-Transfer-Encoding: base64\n\n\
TVqQAAMAAAAEAAAA\n--B--\n";
    let f = features(raw.as_bytes());
    for want in [
        "ct:multipart/mixed",
        "cs:iso-8859-1",
        "cte:quoted-printable",
        "w:café",
        "at:application/octet-stream",
        "at:.exe",
    ] {
        assert!(has(&f, want), "{want} missing in {f:?}");
    }
    assert!(!has(&f, "h:only"));
}

#[test]
fn unspaced_scripts_give_character_pairs() {
    let raw =
        "From: a@b.example\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\n特价优惠\n";
    let f = features(raw.as_bytes());
    for want in ["w:特价", "w:价优", "w:优惠"] {
        assert!(has(&f, want), "{want} missing in {f:?}");
    }
}

#[test]
fn tokens_are_sorted_distinct_hashes_of_the_features() {
    let raw = "From: a@b.example\nSubject: free free\n\nfree money free money\n";
    let tokens = tokenize(raw.as_bytes());
    let mut expected: Vec<u64> = features(raw.as_bytes())
        .iter()
        .map(|f| {
            let (prefix, text) = f.split_once(':').unwrap();
            let kind = [Kind::Word, Kind::Subject, Kind::FromDomain]
                .into_iter()
                .find(|k| k.prefix() == prefix)
                .unwrap();
            token_hash(kind, text)
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(tokens, expected);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
    // "w:free", "w:money", "s:free", "fd:b.example"
    assert_eq!(tokens.len(), 4);
}

#[test]
fn tokens_per_message_are_bounded() {
    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!("word{i} "));
    }
    let raw = format!("From: a@b.example\nSubject: big\n\n{body}\n");
    let tokens = tokenize(raw.as_bytes());
    assert_eq!(tokens.len(), TOKENS_PER_MESSAGE_MAX);
    // The subject comes before the body, so it is always kept.
    assert!(tokens.contains(&token_hash(Kind::Subject, "big")));
}

#[test]
fn hostile_input_never_panics() {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\xff\xfe garbage".to_vec(),
        b"Subject: =?x?Q?\n\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n".to_vec(),
        b"Content-Type: text/html\n\n<<<&&&#;<!--<script".to_vec(),
        vec![b'a'; 3 * 1024 * 1024],
        (0..=255u8).cycle().take(200_000).collect(),
    ];
    let nested =
        "Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\nContent-Type: message/rfc822\n\n"
            .repeat(200);
    inputs.push(nested.into_bytes());
    let mut huge_html = b"Content-Type: text/html\n\n".to_vec();
    huge_html.extend(
        "<a href=http://x.example/>&#65;</a>"
            .repeat(100_000)
            .bytes(),
    );
    inputs.push(huge_html);
    for raw in &inputs {
        let tokens = tokenize(raw);
        assert!(tokens.len() <= TOKENS_PER_MESSAGE_MAX);
        features(raw);
    }
}

/// Pieces of mail, HTML and text that hostile messages are made of.
const FRAGMENTS: &[&str] = &[
    "From: ",
    "Subject: ",
    "Content-Type: text/html\n",
    "Content-Type: multipart/mixed; boundary=b\n",
    "\n",
    "\r\n",
    "--b\n",
    "<a href=\"",
    "http://",
    "www.",
    "é",
    "€",
    "\u{fffd}",
    "特价",
    "&#",
    "&amp",
    ";",
    "<!--",
    "-->",
    "<script>",
    "</",
    ">",
    "<",
    "=?utf-8?B?",
    "?=",
    "@",
    ".",
    ":",
    "'",
    "\"",
    "$",
    "-",
    "word",
    "1234",
    "=",
    " ",
    "\t",
];

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        proptest::prop_assert!(tokenize(&raw).len() <= TOKENS_PER_MESSAGE_MAX);
        super::super::digest(&raw);
    }

    #[test]
    fn arbitrary_mail_fragments_never_panic(picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..200)) {
        let raw: String = picks.iter().map(|&i| FRAGMENTS[i]).collect();
        features(raw.as_bytes());
        tokenize(raw.as_bytes());
        super::super::digest(raw.as_bytes());
    }
}

#[test]
fn feature_sequence_keeps_order_and_repeats_and_its_distinct_prefix_is_features() {
    let raw = "From: a@b.example\nSubject: win win\nContent-Type: text/plain\n\n\
cheap meds cheap meds now\n";
    let seq = feature_sequence(raw.as_bytes());
    let words: Vec<&str> = seq
        .iter()
        .filter(|f| f.starts_with("w:"))
        .map(String::as_str)
        .collect();
    assert_eq!(words, ["w:cheap", "w:meds", "w:cheap", "w:meds", "w:now"]);
    let mut distinct: Vec<String> = Vec::new();
    for f in &seq {
        if !distinct.contains(f) {
            distinct.push(f.clone());
        }
    }
    assert_eq!(distinct, features(raw.as_bytes()));
    // Also past the distinct-token bound: the sequence goes on, `features` stops there.
    let many: String = (0..TOKENS_PER_MESSAGE_MAX + 10)
        .map(|i| format!("w{i}x "))
        .collect();
    let raw = format!("Subject: x\n\n{many}\n");
    let seq = feature_sequence(raw.as_bytes());
    let f = features(raw.as_bytes());
    assert_eq!(f.len(), TOKENS_PER_MESSAGE_MAX);
    assert!(seq.len() > f.len());
    assert_eq!(&seq[..f.len()], &f[..]);
}

proptest::proptest! {
    #[test]
    fn html_sniffing_agrees_with_a_byte_by_byte_scan(text in "(<|[bB][rR]|<[pP]>|<a href|<Div|x| ){0,20}") {
        let bytes = text.as_bytes();
        let model = (0..bytes.len()).any(|i| {
            HTML_TELLTALES
                .iter()
                .any(|t| bytes.get(i..i + t.len()).is_some_and(|w| w.eq_ignore_ascii_case(t)))
        });
        proptest::prop_assert_eq!(looks_like_html(&text), model, "{:?}", text);
    }
}

#[test]
fn plain_words_apart() {
    let raw = PLAIN.as_bytes();
    let tokens = tokenize_with_words(raw, crate::bayes::parse(raw).as_ref());
    assert_eq!(tokens.all, tokenize(raw));
    let word = |kind, text| token_hash(kind, text);
    let mut want: Vec<u64> = ["cheap", "meds"]
        .into_iter()
        .map(|w| word(Kind::Subject, w))
        .chain(
            [
                "buy",
                "cheap",
                "meds",
                "now",
                "only",
                "visit",
                "don't",
                "wait",
                "www",
                "pharma-shop",
                "buy",
            ]
            .into_iter()
            .map(|w| word(Kind::Word, w)),
        )
        .filter(|t| tokens.all.contains(t))
        .collect();
    want.sort_unstable();
    want.dedup();
    for t in &want {
        assert!(tokens.words.contains(t), "a plain word missing");
    }
    // Prices, headers, domains and the subject's `!` are tokens but not plain words.
    for (kind, text) in [
        (Kind::Word, "$20"),
        (Kind::Subject, "!"),
        (Kind::FromName, "online"),
        (Kind::Url, "pharma-shop.co.uk"),
        (Kind::Mailer, "outlook"),
    ] {
        let t = word(kind, text);
        assert!(tokens.all.contains(&t), "{text} is a token");
        assert!(!tokens.words.contains(&t), "{text} is not a plain word");
    }
    assert!(
        tokens.words.windows(2).all(|w| w[0] < w[1]),
        "sorted, distinct"
    );
    assert!(tokens.words.iter().all(|t| tokens.all.contains(t)));
}

#[test]
fn plain_word_rules() {
    use crate::bayes::hash::plain_word;
    for yes in ["hola", "don't", "e-mail", "größe", "안녕하세요"] {
        assert!(plain_word(yes), "{yes}");
    }
    // Han/Kana character pairs are two characters: too short, like "ab".
    for no in ["$20", "a1b2", "ab", "日本", "--", "10-20"] {
        assert!(!plain_word(no), "{no}");
    }
}
