//! A SQL dump cut into statements where the `mariadb` client cuts it (at
//! `;` outside quotes and comments), and each statement sorted by what it
//! may run beside: a plain multi-row `INSERT ... VALUES` may run on any
//! session, a `SET` on every session, anything else on one session after
//! everything before it.
//!
//! The cutting follows the client's own reader (client/mysql.cc
//! `add_line`): `'`, `"` and `` ` `` quote, a backslash escapes the next
//! byte inside any of them, `-- ` and `#` comment to the end of the line,
//! `/* */` comments, and `/*! */` (executable) comments are SQL the client
//! passes on. A backslash outside all of those is a client command (`\!`
//! runs a shell), refused here rather than guessed at: the sessions get
//! whole statements and a sync marker after them, and a statement cut
//! anywhere else than where the client cuts it would swallow the marker.

/// mariadb-dump's first line: asks the client for `--sandbox`, which the
/// sessions run with already. The one backslash command allowed.
const SANDBOX_LINE: &[u8] = b"/*M!999999\\- enable the sandbox mode */";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Sql,
    Quoted(u8),
    Escaped(u8),
    LineComment,
    BlockComment,
}

/// Cuts statements out of bytes fed in any pieces.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// How far `buf` has been read, and in what state.
    at: usize,
    state: State,
    /// Inside a `/*! */` comment (SQL, but a `*/` ends it).
    executable: bool,
    started: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SplitError {
    ClientCommand(String),
    DelimiterInComment,
    Unterminated(&'static str),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::ClientCommand(command) => {
                write!(f, "the dump has a mariadb client command, `{command}` (a backslash outside quotes); a seed may hold SQL only")
            }
            SplitError::DelimiterInComment => write!(f, "the dump has a `;` inside a /*! */ comment; cut that statement in two"),
            SplitError::Unterminated(what) => write!(f, "the dump ends inside {what}; is it whole?"),
        }
    }
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter { buf: Vec::new(), at: 0, state: State::Sql, executable: false, started: false }
    }
}

impl Splitter {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole statement (without its `;`), if the bytes fed so
    /// far hold one. `eof`: no more bytes will come, so what is left is a
    /// statement of its own (the client runs one without a `;` too).
    pub fn next(&mut self, eof: bool) -> Result<Option<Vec<u8>>, SplitError> {
        if !self.started {
            if self.buf.len() < SANDBOX_LINE.len() && !eof {
                return Ok(None);
            }
            self.started = true;
            if self.buf.starts_with(SANDBOX_LINE) {
                self.buf.drain(..SANDBOX_LINE.len());
            }
        }
        while self.at < self.buf.len() {
            let b = self.buf[self.at];
            // Up to two bytes of look-ahead; wait for them unless at the end.
            let (next, after) = (self.buf.get(self.at + 1).copied(), self.buf.get(self.at + 2).copied());
            let step = match self.state {
                State::Sql => match b {
                    b'\'' | b'"' | b'`' => {
                        self.state = State::Quoted(b);
                        1
                    }
                    b'#' => {
                        self.state = State::LineComment;
                        1
                    }
                    b'-' | b'/' | b'*' if next.is_none() && !eof => return Ok(None),
                    b'-' if next == Some(b'-') => match after {
                        None if !eof => return Ok(None),
                        Some(c) if !c.is_ascii_whitespace() && !c.is_ascii_control() => 2,
                        _ => {
                            self.state = State::LineComment;
                            2
                        }
                    },
                    b'/' if next == Some(b'*') => match (after, self.buf.get(self.at + 3)) {
                        (None, _) | (Some(b'M'), None) if !eof => return Ok(None),
                        (Some(b'!'), _) | (Some(b'M'), Some(b'!')) => {
                            self.executable = true;
                            2
                        }
                        _ => {
                            self.state = State::BlockComment;
                            2
                        }
                    },
                    b'*' if self.executable && next == Some(b'/') => {
                        self.executable = false;
                        2
                    }
                    b'\\' => match next {
                        None if !eof => return Ok(None),
                        _ => {
                            return Err(SplitError::ClientCommand(
                                String::from_utf8_lossy(&self.buf[self.at..self.at + 1 + usize::from(next.is_some())]).into_owned(),
                            ))
                        }
                    },
                    b';' if self.executable => return Err(SplitError::DelimiterInComment),
                    b';' => {
                        let statement: Vec<u8> = self.buf.drain(..=self.at).take(self.at).collect();
                        self.at = 0;
                        return Ok(Some(statement));
                    }
                    _ => 1,
                },
                State::Quoted(q) if b == b'\\' => {
                    self.state = State::Escaped(q);
                    1
                }
                State::Quoted(q) if b == q => {
                    self.state = State::Sql;
                    1
                }
                State::Quoted(_) => 1,
                State::Escaped(q) => {
                    self.state = State::Quoted(q);
                    1
                }
                State::LineComment => {
                    if b == b'\n' {
                        self.state = State::Sql;
                    }
                    1
                }
                State::BlockComment if b == b'*' && next.is_none() && !eof => return Ok(None),
                State::BlockComment if b == b'*' && next == Some(b'/') => {
                    self.state = State::Sql;
                    2
                }
                State::BlockComment => 1,
            };
            self.at += step;
        }
        if !eof {
            return Ok(None);
        }
        match self.state {
            State::Quoted(_) | State::Escaped(_) => return Err(SplitError::Unterminated("a quoted string")),
            State::BlockComment => return Err(SplitError::Unterminated("a /* comment")),
            _ if self.executable => return Err(SplitError::Unterminated("a /*! comment")),
            _ => {}
        }
        self.at = 0;
        self.state = State::Sql;
        let rest = std::mem::take(&mut self.buf);
        Ok((!rest.is_empty()).then_some(rest))
    }
}

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows only: on any session, beside other rows.
    Rows,
    /// Session state (`SET`, `USE`): on every session.
    Everywhere,
    /// On one session, after everything before it.
    InOrder,
    /// Opens or ends a transaction (or sets autocommit, or makes a
    /// temporary table): a transaction is one session's, so from here on
    /// everything runs on one session, in order.
    Transaction,
    /// `LOCK TABLES`/`UNLOCK TABLES`: the staging database is the load's
    /// alone, and a lock would hold the other sessions up.
    Lock,
    /// Comments and blanks only: nothing to send.
    Nothing,
    /// `DELIMITER` (the client's, for triggers and routines).
    Delimiter,
}

/// Sorts a statement; unsure means `InOrder`, which is always right.
pub fn kind(statement: &[u8]) -> Kind {
    let body = skip_comments(statement);
    let (first, rest) = word(body);
    let rest = skip_space(rest);
    let upper = || statement.to_ascii_uppercase();
    match first.as_slice() {
        b"" if body.is_empty() => Kind::Nothing,
        b"SET" => {
            let text = upper();
            let has = |w: &[u8]| text.windows(w.len()).any(|x| x == w);
            if has(b"AUTOCOMMIT") || has(b"TRANSACTION") {
                Kind::Transaction
            } else {
                Kind::Everywhere
            }
        }
        b"USE" => Kind::Everywhere,
        b"START" | b"BEGIN" | b"COMMIT" | b"ROLLBACK" | b"SAVEPOINT" | b"RELEASE" | b"XA" => Kind::Transaction,
        b"CREATE" if word(rest).0 == b"TEMPORARY" => Kind::Transaction,
        b"LOCK" | b"UNLOCK" if matches!(word(rest).0.as_slice(), b"TABLES" | b"TABLE") => Kind::Lock,
        b"DELIMITER" => Kind::Delimiter,
        b"INSERT" if rows_only(rest) => Kind::Rows,
        _ => Kind::InOrder,
    }
}

/// After `INSERT`: `INTO name [(columns)] VALUES (...), (...)` and
/// nothing else: no IGNORE or ON DUPLICATE KEY (their outcome depends on
/// order), no variable, subquery or function call (a session's own).
fn rows_only(after_insert: &[u8]) -> bool {
    let (into, s) = word(after_insert);
    if into != b"INTO" {
        return false;
    }
    let Some(s) = skip_name(skip_space(s)) else { return false };
    let mut s = skip_space(s);
    if s.first() == Some(&b'(') {
        let Some(close) = s.iter().position(|c| *c == b')') else { return false };
        // Column names: no quote or paren inside that could hide a ')'.
        if s[1..close].iter().any(|c| matches!(c, b'\'' | b'"' | b'(')) {
            return false;
        }
        s = skip_space(&s[close + 1..]);
    }
    let (values, s) = word(s);
    if values != b"VALUES" && values != b"VALUE" {
        return false;
    }
    let (mut depth, mut quote, mut escaped, mut rows) = (0u8, None, false, 0);
    for &c in s {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == b'\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match (depth, c) {
                (_, b'\'' | b'"' | b'`') if depth == 1 => quote = Some(c),
                (0, b'(') => {
                    depth = 1;
                    rows += 1;
                }
                (0, b',') => {}
                (0, c) if c.is_ascii_whitespace() => {}
                (1, b')') => depth = 0,
                (1, b'(' | b'@' | b'#' | b'/') => return false,
                (1, _) => {}
                _ => return false,
            },
        }
    }
    depth == 0 && quote.is_none() && rows > 0
}

/// A table name: `name`, `` `name` ``, or either dotted with a database.
fn skip_name(s: &[u8]) -> Option<&[u8]> {
    let one = |s: &[u8]| -> Option<usize> {
        if s.first() == Some(&b'`') {
            let mut i = 1;
            loop {
                match (s.get(i), s.get(i + 1)) {
                    (Some(b'`'), Some(b'`')) => i += 2,
                    (Some(b'`'), _) => return Some(i + 1),
                    (Some(_), _) => i += 1,
                    (None, _) => return None,
                }
            }
        }
        let n = s.iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$')).count();
        (n > 0).then_some(n)
    };
    let n = one(s)?;
    match s.get(n) {
        Some(b'.') => one(&s[n + 1..]).map(|m| &s[n + 1 + m..]),
        _ => Some(&s[n..]),
    }
}

/// The word `s` starts with, upper-cased, and what follows it.
fn word(s: &[u8]) -> (Vec<u8>, &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    (s[..n].to_ascii_uppercase(), &s[n..])
}

fn skip_space(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|c| c.is_ascii_whitespace()).count()..]
}

/// The statement past leading blanks and comments; inside a `/*!NNNNN`
/// comment, its SQL.
fn skip_comments(mut s: &[u8]) -> &[u8] {
    loop {
        s = skip_space(s);
        if s.starts_with(b"#") || (s.starts_with(b"--") && s.get(2).is_none_or(|c| c.is_ascii_whitespace())) {
            s = s.iter().position(|c| *c == b'\n').map_or(&[], |n| &s[n + 1..]);
        } else if let Some(inner) = s.strip_prefix(b"/*!").or_else(|| s.strip_prefix(b"/*M!")) {
            return skip_space(&inner[inner.iter().take_while(|c| c.is_ascii_digit()).count()..]);
        } else if let Some(inner) = s.strip_prefix(b"/*") {
            s = inner.windows(2).position(|w| w == b"*/").map_or(&[], |n| &inner[n + 2..]);
        } else {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement of `input` fed `piece` bytes at a time.
    fn split(input: &str, piece: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = Splitter::default();
        let mut out = Vec::new();
        for bytes in input.as_bytes().chunks(piece) {
            splitter.feed(bytes);
            while let Some(s) = splitter.next(false)? {
                out.push(String::from_utf8(s).unwrap());
            }
        }
        while let Some(s) = splitter.next(true)? {
            out.push(String::from_utf8(s).unwrap());
        }
        Ok(out)
    }

    /// The same statements however the bytes arrive.
    fn statements(input: &str) -> Result<Vec<String>, SplitError> {
        let whole = split(input, input.len().max(1));
        for piece in [1, 2, 3, 7] {
            assert_eq!(split(input, piece), whole, "fed {piece} bytes at a time");
        }
        whole
    }

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes_and_comments() {
        let input = "SELECT 'a;b', 'it''s;', 'back\\';slash';\nSELECT \"c;\\\"d\"; SELECT `e;``f`;\n\
                     -- g; 'h\nSELECT 1 # i; `j\n; /* k; ' */ SELECT 2;SELECT 3--4;\nSELECT 5--\n;\n-- the end";
        assert_eq!(
            statements(input).unwrap(),
            [
                "SELECT 'a;b', 'it''s;', 'back\\';slash'",
                "\nSELECT \"c;\\\"d\"",
                " SELECT `e;``f`",
                "\n-- g; 'h\nSELECT 1 # i; `j\n",
                " /* k; ' */ SELECT 2",
                "SELECT 3--4",
                "\nSELECT 5--\n",
                "\n-- the end",
            ]
        );
    }

    #[test]
    fn mariadb_dumps_sandbox_line_goes_and_any_other_client_command_is_refused() {
        let dump = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */;\n/*M!100616 SET @x=1 */;";
        assert_eq!(statements(dump).unwrap(), [" \n-- MariaDB dump\n/*!40101 SET NAMES utf8mb4 */", "\n/*M!100616 SET @x=1 */"]);
        let shell = "SELECT 1;\n\\! touch /tmp/owned\n;";
        assert_eq!(statements(shell), Err(SplitError::ClientCommand("\\!".into())));
        // Inside quotes and comments a backslash is no command.
        assert_eq!(statements("SELECT '\\\\!'; -- \\!\n/* \\! */").unwrap(), ["SELECT '\\\\!'", " -- \\!\n/* \\! */"]);
        assert_eq!(statements("/*!50001 CREATE VIEW v AS SELECT 1; */;"), Err(SplitError::DelimiterInComment));
        assert_eq!(statements("SELECT 'open;"), Err(SplitError::Unterminated("a quoted string")));
        assert_eq!(statements("SELECT 1 /* open;"), Err(SplitError::Unterminated("a /* comment")));
        assert_eq!(statements("/*Me*/ SELECT 1;").unwrap(), ["/*Me*/ SELECT 1"]);
    }

    #[test]
    fn only_plain_rows_run_beside_others() {
        let kinds = |sql: &[&str]| sql.iter().map(|s| kind(s.as_bytes())).collect::<Vec<_>>();
        // What mysqldump and mariadb-dump write.
        assert_eq!(
            kinds(&[
                "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
                "\n\n--\n-- Table structure for table `items`\n--\n\nDROP TABLE IF EXISTS `items`",
                "CREATE TABLE `items` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
                "LOCK TABLES `items` WRITE",
                "/*!40000 ALTER TABLE `items` DISABLE KEYS */",
                "INSERT INTO `items` VALUES\n(0,'item number 0',0.00),\n(1,'a ''b'' (c), @d',-1.5e3),\n(2,NULL,_binary 'x\\'),(')",
                "insert into shop.items (`id`, name) value (1, 'x')",
                "INSERT INTO `items` (`id`, `name`) VALUES (1,'a'),(2,'b')",
                "UNLOCK TABLES",
                "\n-- Dump completed\n",
                "USE `shop`",
            ]),
            [
                Kind::Everywhere,
                Kind::InOrder,
                Kind::InOrder,
                Kind::Lock,
                Kind::InOrder,
                Kind::Rows,
                Kind::Rows,
                Kind::Rows,
                Kind::Lock,
                Kind::Nothing,
                Kind::Everywhere
            ]
        );
        // Order or session matters: in order.
        assert_eq!(
            kinds(&[
                "INSERT IGNORE INTO t VALUES (1)",
                "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)",
                "INSERT INTO t VALUES (@x)",
                "INSERT INTO t VALUES (LAST_INSERT_ID())",
                "INSERT INTO t SELECT * FROM u",
                "INSERT INTO t VALUES (1) /* c */",
                "REPLACE INTO t VALUES (1)",
                "INSERT INTO t (a, `b)`) VALUES (1)",
            ]),
            [Kind::InOrder; 8]
        );
        assert_eq!(
            kinds(&["SET autocommit=0", "/*!40101 SET @@SESSION.AUTOCOMMIT = 0 */", "START TRANSACTION", "commit", "CREATE TEMPORARY TABLE x (a int)"]),
            [Kind::Transaction; 5]
        );
        assert_eq!(kinds(&["DELIMITER ;;", "SET NAMES utf8mb4"]), [Kind::Delimiter, Kind::Everywhere]);
    }
}
