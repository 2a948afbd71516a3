//! Label selectors on the command line (`--namespace-selector`,
//! `--resource-label-selector`) and the names other flags carry.
//!
//! Reloader turns its legacy `key:value` / `key:*` items into a standard selector
//! and then parses it with apimachinery, exiting on a syntax error. We do the same
//! conversion, quirks included, and check the result against apimachinery's
//! grammar here, so that a mistake stops the operator at start with the flag's
//! name instead of failing every LIST later.

/// Why a label selector, key or value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl SelectorError {
    fn new(message: impl Into<String>) -> Self {
        SelectorError(message.into())
    }
}

/// Reloader's conversion of list items into one selector string: an item with a
/// `:` becomes `key=value` from the text before the first `:` and between the
/// first and second (`key:*` becomes `key`, "the label exists"); an item that
/// had a `=` with `*` after it becomes the key alone (`key=*` → `key`). Items are
/// then joined with `,`. Like Reloader, the `=` check looks at the item as
/// written, not as converted.
///
/// One deliberate difference: items are split again at commas first. Reloader
/// converts a quoted item whole, and its chart quotes the whole value, so
/// `namespaceSelector: "a:b,c:d"` reached Reloader as one item and became
/// `a=b,c` (the `:d` silently lost), and `"a:b,c=*"` an invalid selector. A
/// comma inside a requirement (`env in (x,y)`) is unaffected: the conversion
/// leaves such pieces alone and the join restores them.
pub fn from_legacy_items(items: &[String]) -> String {
    let converted: Vec<String> = items
        .iter()
        .flat_map(|item| item.split(','))
        .map(|item| {
            let mut out = item.to_owned();
            if item.contains(':') {
                let mut parts = item.split(':');
                let key = parts.next().unwrap_or_default();
                let value = parts.next().unwrap_or_default();
                out = if value == "*" {
                    key.to_owned()
                } else {
                    format!("{key}={value}")
                };
            }
            if item.contains('=') {
                let mut parts = item.split('=');
                let key = parts.next().unwrap_or_default();
                if parts.next() == Some("*") {
                    out = key.to_owned();
                }
            }
            out
        })
        .collect();
    converted.join(",")
}

/// Checks `selector` against apimachinery's label selector grammar
/// (`labels.Parse`): comma-separated requirements `key`, `!key`, `key=v`,
/// `key==v`, `key!=v`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>N`, `key<N`,
/// with keys and values valid label keys and values. The empty selector is valid
/// (it selects everything).
pub fn validate(selector: &str) -> Result<(), SelectorError> {
    let tokens = lex(selector)?;
    Parser { tokens, at: 0 }.selector()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Bang,
    NotEquals,
    Equals,
    DoubleEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::Bang => "!".into(),
            Token::NotEquals => "!=".into(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::Greater => ">".into(),
            Token::Less => "<".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => "end of string".into(),
        }
    }

    /// Inside a value position `in` and `notin` are plain words.
    fn as_value(&self) -> Option<String> {
        match self {
            Token::Ident(s) => Some(s.clone()),
            Token::In => Some("in".into()),
            Token::NotIn => Some("notin".into()),
            _ => None,
        }
    }
}

fn is_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(text: &str) -> Result<Vec<Token>, SelectorError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if is_space(c) {
            chars.next();
            continue;
        }
        if is_symbol(c) {
            chars.next();
            let next = chars.peek().copied();
            let token = match (c, next) {
                ('!', Some('=')) => Some(Token::NotEquals),
                ('=', Some('=')) => Some(Token::DoubleEquals),
                _ => None,
            };
            if let Some(token) = token {
                chars.next();
                tokens.push(token);
                continue;
            }
            tokens.push(match c {
                '!' => Token::Bang,
                '=' => Token::Equals,
                '>' => Token::Greater,
                '<' => Token::Less,
                '(' => Token::Open,
                ')' => Token::Close,
                _ => Token::Comma,
            });
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if is_space(c) || is_symbol(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        tokens.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    tokens.push(Token::End);
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.at).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.at += 1;
        token
    }

    fn selector(&mut self) -> Result<(), SelectorError> {
        loop {
            match self.peek() {
                Token::End => return Ok(()),
                Token::Ident(_) | Token::Bang => {}
                other => {
                    return Err(SelectorError::new(format!(
                        "found '{}', expected: !, a label key, or the end",
                        other.text()
                    )));
                }
            }
            self.requirement()?;
            match self.next() {
                Token::End => return Ok(()),
                Token::Comma => {
                    if !matches!(self.peek(), Token::Ident(_) | Token::Bang) {
                        return Err(SelectorError::new(format!(
                            "found '{}', expected: a label key after ','",
                            self.peek().text()
                        )));
                    }
                }
                other => {
                    return Err(SelectorError::new(format!(
                        "found '{}', expected: ',' or the end",
                        other.text()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<(), SelectorError> {
        let negated = matches!(self.peek(), Token::Bang);
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Ident(key) => key,
            other => {
                return Err(SelectorError::new(format!(
                    "found '{}', expected: a label key",
                    other.text()
                )));
            }
        };
        label_key(&key)?;
        if negated || matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(());
        }
        let op = self.next();
        let values = match op {
            Token::In | Token::NotIn => self.value_set()?,
            Token::Equals
            | Token::DoubleEquals
            | Token::NotEquals
            | Token::Greater
            | Token::Less => vec![self.exact_value()?],
            other => {
                return Err(SelectorError::new(format!(
                    "found '{}' after {key:?}, expected: =, ==, !=, in, notin, >, <",
                    other.text()
                )));
            }
        };
        if matches!(op, Token::Greater | Token::Less) {
            for value in &values {
                if value.parse::<i64>().is_err() {
                    return Err(SelectorError::new(format!(
                        "{key}{}{value}: the value must be an integer",
                        op.text()
                    )));
                }
            }
        }
        for value in &values {
            label_value(value)?;
        }
        Ok(())
    }

    fn exact_value(&mut self) -> Result<String, SelectorError> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        let token = self.next();
        token.as_value().ok_or_else(|| {
            SelectorError::new(format!("found '{}', expected: a value", token.text()))
        })
    }

    /// `( v1, v2 )`. Empty items are allowed (`(,a)` holds the empty value), as
    /// apimachinery allows them; `()` is the set holding only the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let open = self.next();
        if open != Token::Open {
            return Err(SelectorError::new(format!(
                "found '{}', expected: '('",
                open.text()
            )));
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            let token = self.next();
            match token {
                Token::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                other => match other.as_value() {
                    Some(value) if expect_value => {
                        values.push(value);
                        expect_value = false;
                    }
                    _ => {
                        return Err(SelectorError::new(format!(
                            "found '{}', expected: ',', ')' or a value",
                            other.text()
                        )));
                    }
                },
            }
        }
    }
}

/// A label (or annotation) key: `[prefix/]name`, the prefix a DNS subdomain, the
/// name at most 63 characters of `[A-Za-z0-9._-]` starting and ending with an
/// alphanumeric (Kubernetes' "qualified name").
pub fn label_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix)
            .map_err(|why| SelectorError::new(format!("{key:?}: the prefix before '/' {why}")))?;
    }
    if name.is_empty() {
        return Err(SelectorError::new(format!("{key:?}: the name is empty")));
    }
    if name.len() > 63 {
        return Err(SelectorError::new(format!(
            "{key:?}: the name is longer than 63 characters"
        )));
    }
    if !qualified_chars(name) {
        return Err(SelectorError::new(format!(
            "{key:?}: the name must be letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` starting
/// and ending with an alphanumeric.
pub fn label_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(SelectorError::new(format!(
            "value {value:?} is longer than 63 characters"
        )));
    }
    if !qualified_chars(value) {
        return Err(SelectorError::new(format!(
            "value {value:?} must be letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

fn qualified_chars(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && bytes.iter().all(inner)
        }
        _ => false,
    }
}

/// A DNS-1123 label (a namespace name): at most 63 characters of `[a-z0-9-]`,
/// starting and ending with an alphanumeric. The error says what is wrong.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters".into());
    }
    let bytes = name.as_bytes();
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let first_last_ok = bytes.first().is_some_and(ok) && bytes.last().is_some_and(ok);
    if !first_last_ok || !bytes.iter().all(|b| ok(b) || *b == b'-') {
        return Err(
            "must be lower-case letters, digits or '-', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

/// A DNS-1123 subdomain (most object names): at most 253 characters, dot-separated
/// labels of `[a-z0-9-]`, each starting and ending with an alphanumeric.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || *c == b'-')
    };
    if bytes.iter().all(|b| alnum(b) || matches!(b, b'-' | b'.')) && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(
            "must be lower-case letters, digits, '-' or '.', each part between dots \
             starting and ending with a letter or digit"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn legacy_items_become_a_standard_selector() {
        assert_eq!(from_legacy_items(&items(&["team:a"])), "team=a");
        assert_eq!(from_legacy_items(&items(&["team:*"])), "team");
        assert_eq!(from_legacy_items(&items(&["team=*"])), "team");
        assert_eq!(
            from_legacy_items(&items(&["team=a", "env:*"])),
            "team=a,env"
        );
        assert_eq!(from_legacy_items(&items(&["team!=a"])), "team!=a");
        // A standard `in` selector is split by the list reader and joined back.
        assert_eq!(
            from_legacy_items(&items(&["env in (a", "b)"])),
            "env in (a,b)"
        );
        assert_eq!(from_legacy_items(&[]), "");
    }

    /// Reloader converted a quoted item whole (`"a:b,c:d"` → `a=b,c`).
    #[test]
    fn quoted_items_are_converted_piece_by_piece() {
        assert_eq!(from_legacy_items(&items(&["a:b,c:d"])), "a=b,c=d");
        assert_eq!(from_legacy_items(&items(&["a:enabled,b=*"])), "a=enabled,b");
        assert_eq!(
            from_legacy_items(&items(&["env in (x,y)", "a:*"])),
            "env in (x,y),a"
        );
    }

    /// Reloader keeps only the text between the first and second `:`, and looks
    /// for `=*` in the item as written: both kept, so a selector resolves to what
    /// Reloader used.
    #[test]
    fn legacy_conversion_quirks_are_reloaders() {
        assert_eq!(from_legacy_items(&items(&["a:b:c"])), "a=b");
        assert_eq!(from_legacy_items(&items(&["a:b=*"])), "a:b");
        assert_eq!(from_legacy_items(&items(&["k=*:x"])), "k=*=x");
        assert_eq!(from_legacy_items(&items(&["a.io/b:c"])), "a.io/b=c");
    }

    #[test]
    fn valid_selectors() {
        for s in [
            "",
            "  ",
            "team",
            "!team",
            "team=a",
            "team==a",
            "team!=a",
            "team=",
            "team=a,env!=prod",
            "env in (a,b)",
            "env notin ( a , b )",
            "env in ()",
            "env in (,a)",
            "env in (a,)",
            "env in (in,notin)",
            "env in (a,,b)",
            "example.com/team=a",
            "rank>3",
            "rank<1",
            "Team_1.x=Value-2",
        ] {
            assert_eq!(validate(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn invalid_selectors() {
        for s in [
            "team:a",
            "=a",
            "team=a=b",
            "team a",
            "team,",
            ",team",
            "team=a,,env",
            "env in a",
            "env in (a b)",
            "env in (a",
            "rank>x",
            "!team=a",
            "-team",
            "team=-a",
            "Example.com/team",
            "a/b/c",
            "/team",
            "team=a(",
            "team>=1",
            "rank<-1",
            "x=(",
            "!",
            "team!",
            "a=b c",
            "team in",
        ] {
            assert!(validate(s).is_err(), "{s:?} should be invalid");
        }
        let too_long = "a".repeat(64);
        assert!(validate(&too_long).is_err());
        assert!(validate(&format!("k={too_long}")).is_err());
        assert_eq!(validate(&"a".repeat(63)), Ok(()));
    }

    #[test]
    fn names() {
        assert_eq!(dns_label("kube-system"), Ok(()));
        assert_eq!(dns_label("a"), Ok(()));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", " a", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad:?}");
        }
        assert_eq!(dns_subdomain("stakater-reloader-lock"), Ok(()));
        assert_eq!(dns_subdomain("a.b-c.d"), Ok(()));
        for bad in ["", "a..b", ".a", "a.", "A", "a_b", "-a.b", &"a".repeat(254)] {
            assert!(dns_subdomain(bad).is_err(), "{bad:?}");
        }
        assert_eq!(label_key("reloader.stakater.com/auto"), Ok(()));
        assert_eq!(label_key("auto"), Ok(()));
        for bad in [
            "",
            "/",
            "a/",
            "a/b/c",
            "Reloader.com/auto",
            "x/-a",
            "--enable-ha",
        ] {
            assert!(label_key(bad).is_err(), "{bad:?}");
        }
    }
}
