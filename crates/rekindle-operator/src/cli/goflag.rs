//! How Reloader's command line library (spf13/pflag) reads values, so that the
//! arguments of a Reloader manifest mean here exactly what they meant there.
//!
//! Two things differ from what a Rust user would guess:
//! - booleans are Go's `strconv.ParseBool` words (`1`, `t`, `TRUE`, `False`, …);
//! - a list flag is one line of CSV (Go's `encoding/csv`, default dialect), so
//!   quotes group and are removed. This matters: Reloader's Helm chart renders
//!   `--namespace-selector="team=a"` with the double quotes inside the argument,
//!   and only CSV reading turns that into `team=a`.

/// Parses a boolean the way Go's `strconv.ParseBool` does (and so pflag, for
/// `--flag=value` on a boolean flag).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean (use true or false, as in --flag=false)"
        )),
    }
}

/// Why a list value is not valid CSV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A `"` inside a field that did not start with one (`a"b`).
    #[error("a double quote inside an unquoted item (quote the whole item: \"a,b\")")]
    BareQuote,
    /// A quoted item followed by something other than a comma (`"a"b`), or a
    /// quote that is never closed (`"a`).
    #[error("a quoted item must end with a double quote followed by a comma or the end")]
    Quote,
    /// Only line breaks.
    #[error("no items, only line breaks")]
    Blank,
}

/// Splits one pflag list value into its items, as `encoding/csv` reads the first
/// record of `text`. The empty string is the empty list (pflag's special case).
///
/// Go's reader skips empty lines before the record and ignores everything after
/// the record's line break; both are kept here so that odd values still resolve
/// to what Reloader saw.
pub fn split_list(text: &str) -> Result<Vec<String>, CsvError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut rest = text;
    while let Some(after) = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))
    {
        rest = after;
    }
    if rest.is_empty() {
        return Err(CsvError::Blank);
    }

    let mut items = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(CsvError::Quote),
                    Some('"') => match chars.peek() {
                        Some('"') => {
                            chars.next();
                            item.push('"');
                        }
                        Some(',') => {
                            chars.next();
                            items.push(item);
                            break;
                        }
                        None | Some('\n') => {
                            items.push(item);
                            return Ok(items);
                        }
                        Some('\r') => {
                            chars.next();
                            if matches!(chars.peek(), None | Some('\n')) {
                                items.push(item);
                                return Ok(items);
                            }
                            return Err(CsvError::Quote);
                        }
                        Some(_) => return Err(CsvError::Quote),
                    },
                    Some(c) => item.push(c),
                }
            }
        } else {
            loop {
                match chars.next() {
                    None | Some('\n') => {
                        // `\r\n` ends a line as `\n` does.
                        if item.ends_with('\r') {
                            item.pop();
                        }
                        items.push(item);
                        return Ok(items);
                    }
                    Some(',') => {
                        items.push(item);
                        break;
                    }
                    Some('"') => return Err(CsvError::BareQuote),
                    Some(c) => item.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<String> {
        split_list(text).expect("valid list")
    }

    #[test]
    fn go_booleans() {
        for word in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(word), Ok(true), "{word}");
        }
        for word in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(word), Ok(false), "{word}");
        }
        for word in ["", "yes", "on", "tRUE", " true", "2"] {
            assert!(parse_bool(word).is_err(), "{word:?}");
        }
    }

    #[test]
    fn plain_lists_split_on_commas_without_trimming() {
        assert_eq!(list(""), Vec::<String>::new());
        assert_eq!(list("jobs"), ["jobs"]);
        assert_eq!(list("jobs,cronjobs"), ["jobs", "cronjobs"]);
        // Go's reader keeps spaces and empty items; so do we.
        assert_eq!(list("a, b"), ["a", " b"]);
        assert_eq!(list("a,"), ["a", ""]);
        assert_eq!(list(","), ["", ""]);
    }

    #[test]
    fn quotes_group_and_are_removed() {
        // What Reloader's chart renders for namespaceSelector.
        assert_eq!(list("\"team=a\""), ["team=a"]);
        assert_eq!(list("\"a=1,b=2\""), ["a=1,b=2"]);
        assert_eq!(list("\"x in (a,b)\",c"), ["x in (a,b)", "c"]);
        assert_eq!(list("\"say \"\"hi\"\"\""), ["say \"hi\""]);
        assert_eq!(list("\"\""), [""]);
    }

    #[test]
    fn malformed_quotes_are_errors() {
        assert_eq!(split_list("a\"b"), Err(CsvError::BareQuote));
        assert_eq!(split_list("\"a"), Err(CsvError::Quote));
        assert_eq!(split_list("\"a\"b"), Err(CsvError::Quote));
        assert_eq!(split_list(" \"a\""), Err(CsvError::BareQuote));
    }

    #[test]
    fn only_the_first_record_counts() {
        assert_eq!(list("a,b\nc"), ["a", "b"]);
        assert_eq!(list("a\r\nc"), ["a"]);
        assert_eq!(list("\n\na"), ["a"]);
        assert_eq!(list("\"a\nb\",c"), ["a\nb", "c"]);
        assert_eq!(list("\"a\"\r\nz"), ["a"]);
        assert_eq!(split_list("\n"), Err(CsvError::Blank));
    }
}
