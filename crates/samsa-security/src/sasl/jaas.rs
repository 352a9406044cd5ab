//! Kafka's inline JAAS syntax (`sasl.jaas.config`), as its `JaasConfig`
//! parses it:
//!
//! ```text
//! <LoginModuleClass> <required|requisite|sufficient|optional> [<key>=<value> ...];
//! ```
//!
//! A value is a word (letters, digits, `.`, `_`, `-`, `$`) or a double-quoted
//! string in which `\` escapes the next character. Several entries may
//! follow each other; Kafka's broker takes exactly one per mechanism.

use std::collections::BTreeMap;

/// One login module entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JaasEntry {
    pub login_module: String,
    pub control_flag: String,
    pub options: BTreeMap<String, String>,
}

/// Why a JAAS text does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JAAS config: {0}")]
pub struct JaasError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$')
}

fn tokens(text: &str) -> Result<Vec<Token>, JaasError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Equals);
            }
            ';' => {
                chars.next();
                out.push(Token::Semicolon);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(JaasError("unterminated quoted value".into())),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(JaasError("unterminated quoted value".into())),
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push(Token::Quoted(s));
            }
            c if is_word_char(c) => {
                let mut s = String::new();
                while let Some(&w) = chars.peek() {
                    if !is_word_char(w) {
                        break;
                    }
                    s.push(w);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
            other => return Err(JaasError(format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

/// Parses every entry of `text`. Each must end with `;`.
pub fn parse(text: &str) -> Result<Vec<JaasEntry>, JaasError> {
    let toks = tokens(text)?;
    let mut it = toks.into_iter().peekable();
    let mut entries = Vec::new();
    while it.peek().is_some() {
        let Some(Token::Word(login_module)) = it.next() else {
            return Err(JaasError("expected a login module class name".into()));
        };
        let control_flag = match it.next() {
            Some(Token::Word(f))
                if ["required", "requisite", "sufficient", "optional"]
                    .contains(&f.to_ascii_lowercase().as_str()) =>
            {
                f.to_ascii_lowercase()
            }
            _ => {
                return Err(JaasError(format!(
                    "login module {login_module}: expected a control flag (required, requisite, sufficient, optional)"
                )))
            }
        };
        let mut options = BTreeMap::new();
        loop {
            match it.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(key)) => {
                    if it.next() != Some(Token::Equals) {
                        return Err(JaasError(format!("option {key}: expected '='")));
                    }
                    let value = match it.next() {
                        Some(Token::Word(v) | Token::Quoted(v)) => v,
                        _ => return Err(JaasError(format!("option {key}: expected a value"))),
                    };
                    options.insert(key, value);
                }
                None => {
                    return Err(JaasError(format!(
                        "login module {login_module}: the entry does not end with ';'"
                    )))
                }
                Some(other) => return Err(JaasError(format!("unexpected {other:?}"))),
            }
        }
        entries.push(JaasEntry {
            login_module,
            control_flag,
            options,
        });
    }
    Ok(entries)
}

/// The PLAIN users of a `PlainLoginModule` entry: its `user_<name>="<password>"` options.
pub fn plain_users(entry: &JaasEntry) -> BTreeMap<String, String> {
    entry
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_owned(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plain_example_parses_with_its_users() {
        let text = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
            username="admin" password="admin-secret"
            user_admin="admin-secret" user_alice="alice \"quoted\" secret" user_bob=bob-pw;"#;
        let entries = parse(text).expect("parses");
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(
            e.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.control_flag, "required");
        assert_eq!(e.options.get("username").map(String::as_str), Some("admin"));
        let users = plain_users(e);
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            [
                ("admin".to_owned(), "admin-secret".to_owned()),
                ("alice".to_owned(), "alice \"quoted\" secret".to_owned()),
                ("bob".to_owned(), "bob-pw".to_owned()),
            ]
        );
    }

    #[test]
    fn malformed_texts_are_refused() {
        for bad in [
            "",
            "Module;",
            "Module required user_a=\"x\"",
            "Module maybe;",
            "Module required user_a;",
            "Module required user_a=\"unterminated;",
            "Module required user_a=x, user_b=y;",
        ] {
            let got = parse(bad);
            assert!(
                got.is_err() || got.as_ref().is_ok_and(|e| e.is_empty()),
                "{bad:?}: {got:?}"
            );
        }
        assert!(parse("Module required;\nOther optional a=b;").is_ok_and(|e| e.len() == 2));
    }
}
