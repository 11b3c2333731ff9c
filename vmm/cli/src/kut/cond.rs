//! `disabled_if = CONDITION`: upstream's runner feeds CONDITION to bash's
//! `if`; `vmm kut` runs no shell, so it evaluates the part of bash that
//! upstream's configurations write (`[[ "$TARGET" != qemu ]] &&
//! [[ "$CONFIG_EFI" = y ]]`): tests `[[ WORD OP WORD ]]` with `==`, `=`
//! or `!=` (compared as plain strings), `!`, `true`, `false`, joined by
//! `&&` and `||` (left to right, of equal precedence, as in a bash
//! list). Words are bare, `'single'` or `"double"` quoted, with `$NAME`
//! and `${NAME}` expanded from the variables the runner knows.
//!
//! What it does not do: anything else. A glob pattern, a command
//! substitution, another command or operator, or a variable the runner
//! does not know is an [`Err`] naming it; the test is then SKIPped with
//! that reason, never run as if the condition were false.

/// Evaluates `cond` with `var` giving each variable's value (`None`: not
/// known). `Err` says what cannot be evaluated.
pub fn evaluate(cond: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<bool, String> {
    let toks = tokens(cond)?;
    let mut p = Parser { toks: &toks, at: 0, var };
    let mut value = p.unary()?;
    while let Some(op) = p.peek_op(&["&&", "||"]) {
        p.at += 1;
        let rhs = p.unary()?;
        value = if op == "&&" { value && rhs } else { value || rhs };
    }
    match p.toks.get(p.at) {
        None => Ok(value),
        Some(t) => Err(format!("unexpected {}", t.text)),
    }
}

/// A token: its text as written, and whether any of it was quoted (a
/// quoted `&&` or `]]` is a word, not an operator).
#[derive(Debug)]
struct Tok {
    text: String,
    quoted: bool,
}

/// Splits `s` at unquoted blanks; quotes are kept in the text (expanded
/// later).
fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                quoted = true;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(Tok { text: std::mem::take(&mut cur), quoted });
                    quoted = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if !cur.is_empty() {
        out.push(Tok { text: cur, quoted });
    }
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    /// The unquoted operator at the cursor, if it is one of `ops`.
    fn peek_op(&self, ops: &[&'static str]) -> Option<&'static str> {
        let t = self.toks.get(self.at).filter(|t| !t.quoted)?;
        ops.iter().copied().find(|o| *o == t.text)
    }

    fn unary(&mut self) -> Result<bool, String> {
        if self.peek_op(&["!"]).is_some() {
            self.at += 1;
            return Ok(!self.unary()?);
        }
        if let Some(w) = self.peek_op(&["true", "false"]) {
            self.at += 1;
            return Ok(w == "true");
        }
        if self.peek_op(&["[["]).is_none() {
            let t = self.toks.get(self.at).map_or("the end", |t| t.text.as_str());
            return Err(format!("{t} (vmm kut evaluates [[ A == B ]], [[ A != B ]], !, true, false, && and ||)"));
        }
        let [_, a, op, b, close] = self.toks.get(self.at..self.at + 5).unwrap_or_default() else {
            return Err("a [[ test that is not [[ WORD OP WORD ]]".into());
        };
        if close.quoted || close.text != "]]" || op.quoted || !matches!(op.text.as_str(), "==" | "=" | "!=") {
            return Err(format!(
                "[[ {} {} {} {} (only [[ WORD ==|=|!= WORD ]] is evaluated)",
                a.text, op.text, b.text, close.text
            ));
        }
        self.at += 5;
        let (a, b) = (self.word(a, false)?, self.word(b, true)?);
        Ok((a == b) == (op.text != "!="))
    }

    /// The value of a word; `pattern`: it is the right side of `==`,
    /// where bash matches unquoted glob characters.
    fn word(&self, t: &Tok, pattern: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut quote: Option<char> = None;
        let mut chars = t.text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (Some('\''), c) => out.push(c),
                (_, '$') => {
                    let braced = chars.next_if_eq(&'{').is_some();
                    let mut name = String::new();
                    while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        name.push(c);
                    }
                    if braced && chars.next_if_eq(&'}').is_none() || name.is_empty() {
                        return Err(format!("{} (only $NAME and ${{NAME}} are expanded)", t.text));
                    }
                    out.push_str(
                        &(self.var)(&name).ok_or_else(|| format!("${name}, a variable vmm kut does not set"))?,
                    );
                }
                (_, '`' | '\\') => return Err(format!("{} (no command substitution or escape)", t.text)),
                (None, '*' | '?' | '[' | '(' | ')' | '<' | '>' | ';' | '|' | '&') if pattern || !"*?[".contains(c) => {
                    return Err(format!("{} (no patterns or shell syntax)", t.text));
                }
                (_, c) => out.push(c),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TARGET" => Some("qemu".into()),
            "ACCEL" => Some("kvm".into()),
            "CONFIG_EFI" => Some("n".into()),
            _ => None,
        }
    }

    fn eval(c: &str) -> Result<bool, String> {
        evaluate(c, &vars)
    }

    #[test]
    fn upstream_conditions() {
        assert_eq!(eval(r#"[[ "$TARGET" != qemu ]]"#), Ok(false));
        assert_eq!(eval(r#"[[ "$TARGET" == qemu ]]"#), Ok(true));
        assert_eq!(eval(r#"[[ "$TARGET" != qemu ]] && [[ "$CONFIG_EFI" = y ]]"#), Ok(false));
        assert_eq!(eval(r#"[[ "$TARGET" = qemu ]] && [[ "${CONFIG_EFI}" = n ]]"#), Ok(true));
        assert_eq!(eval(r#"[[ "$TARGET" != qemu ]] || [[ $ACCEL == 'kvm' ]]"#), Ok(true));
        // Left to right, equal precedence: (true || x) && false.
        assert_eq!(eval("true || false && false"), Ok(false));
        assert_eq!(eval("! [[ a == b ]]"), Ok(true));
        // A quoted operator is a word.
        assert_eq!(eval(r#"[[ "&&" == "&&" ]]"#), Ok(true));
    }

    #[test]
    fn what_cannot_be_evaluated_is_named() {
        for (c, word) in [
            ("test -e /etc/passwd", "test"),
            ("[[ $TARGET == q* ]]", "patterns"),
            ("[[ $(id) == x ]]", "$(id)"),
            ("[[ `id` == x ]]", "command substitution"),
            ("[[ $HOME == x ]]", "$HOME"),
            ("[[ a -eq b ]]", "-eq"),
            ("[[ a == b", "not [[ WORD OP WORD ]]"),
            ("[[ a == b ]] ; rm -rf ~", "unexpected ;"),
            ("[[ \"a == b ]]", "unclosed quote"),
            ("", "the end"),
            ("[[ ${TARGET == x ]]", "${NAME}"),
        ] {
            let e = eval(c).unwrap_err();
            assert!(e.contains(word), "{c}: {e}");
        }
    }
}
