//! The table of every symbol: name, default weight, family, and what it means. The one
//! place weights are set; the README's table is this table. Cluster settings may override
//! any weight by name (see `settings`).

/// The check family a symbol belongs to (one function per family in `checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// SPF, DKIM and DMARC results.
    Auth,
    /// The client address on DNS blocklists.
    Dnsbl,
    /// Domains of body URLs on URI blocklists.
    Uribl,
    /// Message-ID, Date, From, To, Subject and encoded words.
    Headers,
    /// The Received chain.
    Received,
    /// The connecting client: its HELO name and its reverse DNS.
    Client,
    /// MIME structure and transfer encodings.
    Mime,
    /// What the HTML shows and hides.
    Html,
    /// The URLs of the body.
    Urls,
    /// The wording of the body.
    Body,
    /// Traits of unsolicited bulk mail: opt-out footers, recipients, padded subjects, forms.
    Bulk,
    /// Traits of bulk-mailing software: a claimed mail client without its traits, the
    /// highest priority flag.
    Ratware,
    /// Attachments and archives.
    Attachments,
    /// The Bayesian classifier's probability.
    Bayes,
    /// Allow and deny lists.
    Lists,
}

impl Family {
    /// Its name as the README's symbol table writes it (`auth`, `dnsbl`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Auth => "auth",
            Dnsbl => "dnsbl",
            Uribl => "uribl",
            Headers => "headers",
            Received => "received",
            Client => "client",
            Mime => "mime",
            Html => "html",
            Urls => "urls",
            Body => "body",
            Bulk => "bulk",
            Ratware => "ratware",
            Attachments => "attachments",
            Bayes => "bayes",
            Lists => "lists",
        }
    }
}

/// One symbol of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolDef {
    /// The name (`A-Z`, `0-9`, `_`), as shown in `X-Spam-Symbols` and read by rules.
    pub name: &'static str,
    /// The weight when the cluster settings do not override it.
    pub weight: f64,
    /// The family whose check adds it.
    pub family: Family,
    /// What it means, one line.
    pub description: &'static str,
}

const fn def(
    name: &'static str,
    weight: f64,
    family: Family,
    description: &'static str,
) -> SymbolDef {
    SymbolDef {
        name,
        weight,
        family,
        description,
    }
}

pub use super::symbol_names::*;

use Family::*;

/// Every symbol, grouped by family.
pub const SYMBOLS: &[SymbolDef] = &[
    def(
        SPF_PASS,
        -0.2,
        Auth,
        "SPF: the client may send for the envelope sender's domain",
    ),
    def(
        SPF_FAIL,
        2.0,
        Auth,
        "SPF: the sender's domain says this client may not send for it",
    ),
    def(
        SPF_SOFTFAIL,
        1.0,
        Auth,
        "SPF: the sender's domain says this client is probably not its own (~all)",
    ),
    def(
        SPF_NEUTRAL,
        0.2,
        Auth,
        "SPF: the sender's domain makes no statement about this client (?all)",
    ),
    def(
        SPF_NONE,
        0.0,
        Auth,
        "SPF: the sender's domain publishes no SPF record (informational)",
    ),
    def(
        SPF_PERMERROR,
        0.5,
        Auth,
        "SPF: the sender's SPF record is broken",
    ),
    def(
        SPF_TEMPERROR,
        0.0,
        Auth,
        "SPF: the check failed on DNS (informational)",
    ),
    def(
        DKIM_PASS,
        -0.2,
        Auth,
        "DKIM: at least one signature verifies",
    ),
    def(
        DKIM_FAIL,
        1.0,
        Auth,
        "DKIM: the signature does not verify (altered or forged)",
    ),
    def(
        DKIM_PERMERROR,
        0.5,
        Auth,
        "DKIM: the signature or its key is malformed",
    ),
    def(
        DKIM_NONE,
        0.0,
        Auth,
        "DKIM: the message is not signed (informational)",
    ),
    def(
        DMARC_PASS,
        -0.5,
        Auth,
        "DMARC: the From domain is aligned with a passing SPF or DKIM",
    ),
    def(
        DMARC_FAIL_REJECT,
        4.0,
        Auth,
        "DMARC fails and the From domain's policy is p=reject",
    ),
    def(
        DMARC_FAIL_QUARANTINE,
        2.5,
        Auth,
        "DMARC fails and the From domain's policy is p=quarantine",
    ),
    def(
        DMARC_FAIL,
        1.0,
        Auth,
        "DMARC fails and the From domain's policy is p=none",
    ),
    def(
        DMARC_NONE,
        0.0,
        Auth,
        "DMARC: the From domain publishes no policy (informational)",
    ),
    def(
        DMARC_PERMERROR,
        0.2,
        Auth,
        "DMARC: the From domain's record is broken",
    ),
    def(
        DNSBL_LISTED,
        3.0,
        Dnsbl,
        "the client address is listed in a configured DNSBL zone",
    ),
    def(
        DNSBL_LISTED_MULTI,
        2.0,
        Dnsbl,
        "the client address is listed in two or more DNSBL zones",
    ),
    def(
        URIBL_LISTED,
        4.0,
        Uribl,
        "the domain of a URL in the body is listed in a URIBL zone",
    ),
    def(
        URIBL_LISTED_MULTI,
        2.0,
        Uribl,
        "two or more domains or zones list the body's URLs",
    ),
    def(MISSING_MESSAGE_ID, 1.0, Headers, "no Message-ID header"),
    def(
        INVALID_MESSAGE_ID,
        1.0,
        Headers,
        "the Message-ID is not of the form <left@right>",
    ),
    def(MISSING_DATE, 1.0, Headers, "no Date header"),
    def(
        INVALID_DATE,
        2.0,
        Headers,
        "the Date header is not an RFC 5322 date",
    ),
    def(
        DATE_IN_FUTURE,
        2.0,
        Headers,
        "the Date is more than 12 hours after the time of arrival",
    ),
    def(
        DATE_IN_PAST,
        0.5,
        Headers,
        "the Date is more than 4 days before the time of arrival",
    ),
    def(
        MISSING_FROM,
        1.5,
        Headers,
        "no From header, or one without an address",
    ),
    def(
        INVALID_FROM,
        1.5,
        Headers,
        "the From address is not of the form local@domain.tld",
    ),
    def(MULTIPLE_FROM, 1.0, Headers, "more than one From header"),
    def(
        FROM_NAME_SPOOFS_ADDRESS,
        2.5,
        Headers,
        "the From display name shows an address of another domain than the real one",
    ),
    def(MISSING_TO, 0.5, Headers, "neither To nor Cc header"),
    def(
        MISSING_SUBJECT,
        0.5,
        Headers,
        "no Subject header, or an empty one",
    ),
    def(
        SUBJECT_ALL_CAPS,
        2.0,
        Headers,
        "the Subject has ten or more letters, all capitals",
    ),
    def(
        SUBJECT_EXCESS_PUNCTUATION,
        0.5,
        Headers,
        "the Subject has a run of three !, ? or $",
    ),
    def(
        ENCODED_WORD_ASCII,
        1.0,
        Headers,
        "Subject or From uses base64 encoded words for plain ASCII text",
    ),
    def(
        ENCODED_WORD_MALFORMED,
        1.0,
        Headers,
        "Subject or From has an encoded word that does not decode",
    ),
    def(
        HEADER_8BIT_UNENCODED,
        0.3,
        Headers,
        "Subject or From has raw 8-bit characters instead of encoded words",
    ),
    def(
        RECEIVED_MISSING,
        0.5,
        Received,
        "no Received header: the client did not come through any mail server",
    ),
    def(
        RECEIVED_MALFORMED,
        0.5,
        Received,
        "a Received header without a parseable date",
    ),
    def(
        RECEIVED_DATES_DISORDERED,
        1.0,
        Received,
        "a Received header is dated more than 6 hours after the one added later",
    ),
    def(
        RECEIVED_TOO_MANY,
        1.0,
        Received,
        "more than 30 Received headers",
    ),
    def(
        RDNS_NONE,
        0.5,
        Client,
        "the client's address has no reverse name that resolves back to it",
    ),
    def(
        RDNS_DYNAMIC,
        2.5,
        Client,
        "the client's reverse name is that of an access line (IP digits, dsl, dialup, pool, …)",
    ),
    def(
        HELO_NOT_FQDN,
        2.0,
        Client,
        "the HELO name is a bare word, not a fully qualified host name",
    ),
    def(
        HELO_IP_LITERAL,
        0.5,
        Client,
        "the HELO name is an address instead of a host name",
    ),
    def(
        HELO_FORGED_PROVIDER,
        0.0,
        Client,
        "the HELO claims a large mail provider the client's reverse name does not belong to (informational)",
    ),
    def(
        MIME_HTML_ONLY,
        1.0,
        Mime,
        "the body is HTML with no text/plain alternative",
    ),
    def(
        MIME_HTML_ONLY_NO_HTML_TAG,
        1.0,
        Mime,
        "an HTML-only body without an <html> element (generated; mail clients write one)",
    ),
    def(
        MIME_ALTERNATIVE_DIFFERS,
        0.5,
        Mime,
        "the text and HTML alternatives share less than 30% of their words",
    ),
    def(
        MIME_BAD_TRANSFER_ENCODING,
        1.5,
        Mime,
        "a part's Content-Transfer-Encoding is unknown or does not fit its bytes",
    ),
    def(
        MIME_NO_VERSION,
        1.0,
        Mime,
        "multipart or HTML content without a MIME-Version header",
    ),
    def(
        BODY_EMPTY,
        0.5,
        Mime,
        "no text in the body and no attachment",
    ),
    def(
        HTML_HIDDEN_TEXT,
        1.5,
        Html,
        "30 or more characters of HTML text styled invisible",
    ),
    def(
        HTML_TINY_TEXT,
        1.0,
        Html,
        "30 or more characters of HTML text in a font below 4 px",
    ),
    def(
        HTML_LINK_TEXT_MISMATCH,
        2.5,
        Html,
        "a link's text shows a URL of another domain than the link goes to",
    ),
    def(
        HTML_IMAGE_ONLY,
        2.0,
        Html,
        "HTML with images and fewer than 200 characters of text",
    ),
    def(
        URL_IP_ADDRESS,
        2.0,
        Urls,
        "a URL whose host is a numeric IP address",
    ),
    def(
        URL_USERINFO,
        2.0,
        Urls,
        "a URL with user info before the host (http://bank.example@evil.test/)",
    ),
    def(
        URL_SHORTENER,
        0.5,
        Urls,
        "a URL on a link-shortening service that hides the destination",
    ),
    def(
        BODY_SPAM_PHRASES,
        1.5,
        Body,
        "two or more stock phrases of bulk mail (\"act now\", \"risk free\", …)",
    ),
    def(
        BODY_SPAM_PHRASES_MANY,
        2.0,
        Body,
        "four or more stock phrases of bulk mail (adds to BODY_SPAM_PHRASES)",
    ),
    def(
        BODY_ADVANCE_FEE,
        2.5,
        Body,
        "two or more stock phrases of advance-fee fraud (\"next of kin\", \"strictly confidential\", …)",
    ),
    def(
        BODY_MOSTLY_CAPS,
        1.5,
        Body,
        "half or more of 200+ letters of body text are capitals",
    ),
    def(
        BULK_OPT_OUT_NO_LIST,
        0.0,
        Bulk,
        "an opt-out footer (\"unsubscribe\", \"to be removed\", …) but no List-Unsubscribe or List-Id header (informational)",
    ),
    def(TO_UNDISCLOSED, 1.5, Bulk, "To names undisclosed recipients"),
    def(
        TO_MANY_RECIPIENTS,
        1.5,
        Bulk,
        "eight or more addresses in To and Cc together",
    ),
    def(
        SUBJECT_PADDED_ID,
        1.5,
        Bulk,
        "the Subject pads a number or code to its end with eight or more spaces",
    ),
    def(HTML_FORM, 0.5, Bulk, "the HTML has a form to fill in"),
    def(
        HTML_LARGE_TEXT,
        1.5,
        Bulk,
        "50 or more characters of HTML text in a large font (24 px or more)",
    ),
    def(
        FORGED_MUA_OUTLOOK,
        2.5,
        Ratware,
        "a Message-ID in the form of Outlook (Express) up to 2007 without its X-MimeOLE header, or X-Mailer claims one of them and the message lacks that header, a text alternative or its boundary style",
    ),
    def(
        X_PRIORITY_HIGHEST,
        1.0,
        Ratware,
        "X-Priority 1, the highest, which mass mailers set",
    ),
    def(
        ATTACHMENT_EXECUTABLE,
        4.0,
        Attachments,
        "an attachment (or archive entry) is a program or script",
    ),
    def(
        ATTACHMENT_DOUBLE_EXTENSION,
        3.0,
        Attachments,
        "an attachment named like a document but executable (invoice.pdf.exe)",
    ),
    def(
        ARCHIVE_ENCRYPTED,
        2.5,
        Attachments,
        "a password-protected archive, which no scanner can look into",
    ),
    def(
        ARCHIVE_BOMB,
        5.0,
        Attachments,
        "an archive crosses the decompression limits",
    ),
    def(
        VIRUS_FOUND,
        20.0,
        Attachments,
        "the virus scanner found a signature",
    ),
    def(BAYES_00, -3.0, Bayes, "Bayes spam probability below 1%"),
    def(BAYES_05, -1.5, Bayes, "Bayes spam probability 1% to 5%"),
    def(BAYES_20, -0.5, Bayes, "Bayes spam probability 5% to 20%"),
    def(BAYES_40, 0.0, Bayes, "Bayes spam probability 20% to 40%"),
    def(BAYES_50, 0.5, Bayes, "Bayes spam probability 40% to 60%"),
    def(BAYES_60, 2.5, Bayes, "Bayes spam probability 60% to 80%"),
    def(BAYES_80, 3.5, Bayes, "Bayes spam probability 80% to 95%"),
    def(BAYES_95, 5.0, Bayes, "Bayes spam probability 95% to 99%"),
    def(BAYES_99, 5.5, Bayes, "Bayes spam probability 99% or more"),
    def(
        BAYES_UNFAMILIAR,
        2.5,
        Bayes,
        "over 80% of the message's words (20 or more) never occur in the learned ham",
    ),
    def(
        ALLOWLIST_SENDER,
        -15.0,
        Lists,
        "the sender's address is on the allow list",
    ),
    def(
        ALLOWLIST_DOMAIN,
        -10.0,
        Lists,
        "the sender's domain is on the allow list",
    ),
    def(
        ALLOWLIST_IP,
        -10.0,
        Lists,
        "the client address is on the allow list",
    ),
    def(
        DENYLIST_SENDER,
        15.0,
        Lists,
        "the sender's address is on the deny list",
    ),
    def(
        DENYLIST_DOMAIN,
        12.0,
        Lists,
        "the sender's domain is on the deny list",
    ),
    def(
        DENYLIST_IP,
        12.0,
        Lists,
        "the client address is on the deny list",
    ),
];

/// The table entry of `name`, if it is a symbol.
pub fn lookup(name: &str) -> Option<&'static SymbolDef> {
    SYMBOLS.iter().find(|def| def.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for def in SYMBOLS {
            assert!(seen.insert(def.name), "{} twice", def.name);
            assert!(
                def.name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                def.name
            );
            assert!(def.name.len() <= mxmesh_crdt::rule::SYMBOL_NAME_LEN_MAX);
            assert!(!def.description.is_empty());
        }
        assert!(SYMBOLS.len() >= 40);
    }

    /// The README's symbol table is this table: every row, with its default weight and family.
    #[test]
    fn the_readme_lists_every_symbol_with_its_weight() {
        let readme = include_str!("../../../README.md");
        for def in SYMBOLS {
            let row = format!(
                "| `{}` | {} | {} |",
                def.name,
                def.weight,
                def.family.as_str()
            );
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }
}
