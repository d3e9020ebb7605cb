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
    /// Where the statement being read starts in `buf`, how far it has
    /// been read, and in what state.
    start: usize,
    at: usize,
    state: State,
    /// Inside a `/*! */` comment (SQL, but a `*/` ends it).
    executable: bool,
    /// Nothing but blanks and comments read of this statement yet: the
    /// client takes `--` as a comment here even without a blank after it.
    fresh: bool,
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
        Splitter { buf: Vec::new(), start: 0, at: 0, state: State::Sql, executable: false, fresh: true, started: false }
    }
}

impl Splitter {
    pub fn feed(&mut self, bytes: &[u8]) {
        // Statements already cut go first, once per read rather than once
        // per statement (a dump of one-row INSERTs has millions).
        self.buf.drain(..self.start);
        self.at -= self.start;
        self.start = 0;
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
                self.start = SANDBOX_LINE.len();
                self.at = self.start;
            }
        }
        while self.at < self.buf.len() {
            let b = self.buf[self.at];
            // Up to three bytes of look-ahead; wait for them unless at the end.
            let ahead = |n: usize| self.buf.get(self.at + n).copied();
            let (next, after) = (ahead(1), ahead(2));
            let step = match self.state {
                State::Sql => match b {
                    b'-' | b'/' | b'*' if next.is_none() && !eof => return Ok(None),
                    b'-' if next == Some(b'-') => match after {
                        None if !eof && !self.fresh => return Ok(None),
                        Some(c) if !self.fresh && !c.is_ascii_whitespace() && !c.is_ascii_control() => {
                            self.fresh = false;
                            2
                        }
                        _ => {
                            self.state = State::LineComment;
                            2
                        }
                    },
                    b'#' => {
                        self.state = State::LineComment;
                        1
                    }
                    b'/' if next == Some(b'*') => match (after, ahead(3)) {
                        (None, _) | (Some(b'M'), None) if !eof => return Ok(None),
                        (Some(b'!'), _) | (Some(b'M'), Some(b'!')) => {
                            self.executable = true;
                            self.fresh = false;
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
                            let command = &self.buf[self.at..self.at + 1 + usize::from(next.is_some())];
                            return Err(SplitError::ClientCommand(String::from_utf8_lossy(command).into_owned()));
                        }
                    },
                    b';' if self.executable => return Err(SplitError::DelimiterInComment),
                    b';' => {
                        let statement = self.buf[self.start..self.at].to_vec();
                        self.at += 1;
                        self.start = self.at;
                        self.fresh = true;
                        return Ok(Some(statement));
                    }
                    _ => {
                        if b == b'\'' || b == b'"' || b == b'`' {
                            self.state = State::Quoted(b);
                        }
                        self.fresh &= b.is_ascii_whitespace();
                        1
                    }
                },
                // The client's own rule: a backslash escapes inside '' and
                // "", not inside a `name`.
                State::Quoted(q) if b == b'\\' && q != b'`' => {
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
        let rest = self.buf[self.start..].to_vec();
        self.buf.clear();
        (self.start, self.at, self.state, self.fresh) = (0, 0, State::Sql, true);
        Ok((!rest.is_empty()).then_some(rest))
    }
}

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows only: on any session, beside other rows.
    Rows,
    /// Session state (`SET`): on every session.
    Everywhere,
    /// On one session, after everything before it.
    InOrder,
    /// Opens or ends a transaction, sets autocommit, makes a temporary
    /// table or sets what the session's next INSERT gets (INSERT_ID,
    /// TIMESTAMP): that is one session's, so from here on everything runs
    /// on one session, in order.
    OneSession,
    /// `LOCK TABLES`/`UNLOCK TABLES`: the staging database is the load's
    /// alone, and a lock would hold the other sessions up.
    Lock,
    /// Comments and blanks only: nothing to send.
    Nothing,
    /// Not loaded at all, and why.
    Refused(&'static str),
}

/// The mariadb client's own commands (client/mysql.cc `commands[]`): at
/// a statement's start it runs them itself, a line without `;` included.
const CLIENT_COMMANDS: [&[u8]; 21] = [
    b"CHARSET",
    b"CLEAR",
    b"CONNECT",
    b"EDIT",
    b"EGO",
    b"EXIT",
    b"GO",
    b"HELP",
    b"NOPAGER",
    b"NOTEE",
    b"NOWARNING",
    b"PAGER",
    b"PRINT",
    b"PROMPT",
    b"QUIT",
    b"REHASH",
    b"SOURCE",
    b"STATUS",
    b"SYSTEM",
    b"TEE",
    b"WARNINGS",
];

/// What the dump's session state says so far, as far as spreading rows
/// depends on it.
#[derive(Debug, Default)]
pub struct Dialect {
    /// `FOREIGN_KEY_CHECKS=0`, as mysqldump's header sets: rows of a child
    /// table may go in before their parents'.
    foreign_keys_off: bool,
    /// `NO_AUTO_VALUE_ON_ZERO` (also mysqldump's header): a 0 id is a value.
    zero_is_a_value: bool,
}

impl Dialect {
    /// Sorts a statement (and notes the session state a `SET` changes);
    /// unsure means in order, which is always right.
    pub fn kind(&mut self, statement: &[u8]) -> Kind {
        let body = skip_comments(statement);
        let (first, rest) = word(body);
        let upper = statement.to_ascii_uppercase();
        let has = |w: &[u8]| upper.windows(w.len()).any(|x| x == w);
        match first.as_slice() {
            b"" if body.is_empty() => Kind::Nothing,
            b"DELIMITER" => Kind::Refused(
                "the dump sets DELIMITER, as it does around triggers and routines; a mysql store swaps in base tables only: remove them from the snapshot",
            ),
            b"USE" => {
                Kind::Refused("the dump names a database of its own (USE; made with mysqldump --databases or --all-databases); dump one database without them")
            }
            w if CLIENT_COMMANDS.contains(&w) || body.starts_with(b"?") => {
                Kind::Refused("the dump has a mariadb client command at a statement's start (quit, source, system, ...); a seed may hold SQL only")
            }
            b"SET" if has(b"NO_BACKSLASH_ESCAPES") => {
                Kind::Refused("the dump sets NO_BACKSLASH_ESCAPES, which changes where the client's statements end; dump without it")
            }
            b"SET" if has(b"AUTOCOMMIT") || has(b"TRANSACTION") || has(b"INSERT_ID") || has(b"TIMESTAMP") => Kind::OneSession,
            // `SET STATEMENT ... FOR` runs a statement; a subquery reads rows.
            b"SET" if has(b" FOR ") || has(b"SELECT") => Kind::InOrder,
            b"SET" => {
                let squeezed: Vec<u8> = upper.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
                let says = |w: &[u8]| squeezed.windows(w.len()).any(|x| x == w);
                if says(b"FOREIGN_KEY_CHECKS") {
                    self.foreign_keys_off = says(b"FOREIGN_KEY_CHECKS=0");
                }
                if says(b"SQL_MODE") {
                    self.zero_is_a_value = says(b"NO_AUTO_VALUE_ON_ZERO");
                }
                Kind::Everywhere
            }
            b"START" | b"BEGIN" | b"COMMIT" | b"ROLLBACK" | b"SAVEPOINT" | b"RELEASE" | b"XA" => Kind::OneSession,
            b"CREATE"
                if upper
                    .split(|c| *c == b'(')
                    .next()
                    .is_some_and(|head| head.split(|c| !c.is_ascii_alphanumeric() && *c != b'_').any(|w| w == b"TEMPORARY")) =>
            {
                Kind::OneSession
            }
            b"LOCK" | b"UNLOCK" if matches!(word(skip_space(rest)).0.as_slice(), b"TABLES" | b"TABLE") => Kind::Lock,
            b"INSERT" if self.foreign_keys_off && rows_only(skip_space(rest), self.zero_is_a_value) => Kind::Rows,
            _ => Kind::InOrder,
        }
    }
}

/// After `INSERT`: `INTO name VALUES (...), (...)` and nothing else: no
/// IGNORE or ON DUPLICATE KEY (their outcome depends on order), no
/// variable, subquery or function call (a session's own), and every row's
/// first value given (not NULL, DEFAULT or an auto 0): an AUTO_INCREMENT
/// id, usually the first column, would otherwise depend on which
/// statement ran first. A column list, which could leave the id out,
/// runs in order too.
fn rows_only(after_insert: &[u8], zero_is_a_value: bool) -> bool {
    let (into, s) = word(after_insert);
    if into != b"INTO" {
        return false;
    }
    let Some(s) = skip_name(skip_space(s)) else { return false };
    let (values, s) = word(skip_space(s));
    if values != b"VALUES" && values != b"VALUE" {
        return false;
    }
    let auto = |value: &[u8]| {
        let (w, _) = word(value);
        w == b"NULL" || w == b"DEFAULT" || (w == b"0" && !zero_is_a_value)
    };
    let (mut depth, mut quote, mut escaped, mut rows) = (0u8, None, false, 0);
    for (i, &c) in s.iter().enumerate() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(q) if c == b'\\' && q != b'`' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match (depth, c) {
                (1, b'\'' | b'"' | b'`') => quote = Some(c),
                (0, b'(') if auto(skip_space(&s[i + 1..])) => return false,
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

    /// Where the real client (MariaDB 10.11's) was seen to differ from the
    /// plain rules: `--` with no blank after it is a comment at a
    /// statement's start (only there), and a backslash does not escape
    /// inside a `name`.
    #[test]
    fn statements_end_where_the_client_ends_them() {
        assert_eq!(statements("--don't\nSELECT 1;  --y'\nSELECT 2;").unwrap(), ["--don't\nSELECT 1", "  --y'\nSELECT 2"]);
        // Inside a statement it is SQL, and its quote opens a string.
        assert_eq!(statements("SELECT 1\n--don't\n;SELECT 'a';"), Err(SplitError::Unterminated("a quoted string")));
        assert_eq!(statements("SELECT 1 AS `a\\`; SELECT 'b';").unwrap(), ["SELECT 1 AS `a\\`", " SELECT 'b'"]);
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

    fn kinds(dialect: &mut Dialect, sql: &[&str]) -> Vec<Kind> {
        sql.iter().map(|s| dialect.kind(s.as_bytes())).collect()
    }

    /// What mysqldump's and mariadb-dump's header sets.
    fn dumps_header() -> Dialect {
        let mut dialect = Dialect::default();
        let header = [
            "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */",
            "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
        ];
        assert_eq!(kinds(&mut dialect, &header), [Kind::Everywhere; 2]);
        dialect
    }

    #[test]
    fn only_plain_rows_with_their_ids_run_beside_others_once_foreign_keys_are_off() {
        let rows = "INSERT INTO `items` VALUES\n(0,'item number 0',0.00),\n(1,'a ''b'' (c), @d',-1.5e3),\n(2,NULL,_binary 'x\\'),(')";
        // Before the header: a child's rows could go in before its parent's.
        assert_eq!(Dialect::default().kind(rows.as_bytes()), Kind::InOrder);
        let mut dialect = dumps_header();
        assert_eq!(
            kinds(
                &mut dialect,
                &[
                    "\n\n--\n-- Table structure for table `items`\n--\n\nDROP TABLE IF EXISTS `items`",
                    "CREATE TABLE `items` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
                    "LOCK TABLES `items` WRITE",
                    "/*!40000 ALTER TABLE `items` DISABLE KEYS */",
                    rows,
                    "insert into shop.items value (1, 'x')",
                    "UNLOCK TABLES",
                    "\n-- Dump completed\n",
                ]
            ),
            [Kind::InOrder, Kind::InOrder, Kind::Lock, Kind::InOrder, Kind::Rows, Kind::Rows, Kind::Lock, Kind::Nothing]
        );
        // Order or session matters: in order.
        assert_eq!(
            kinds(
                &mut dialect,
                &[
                    "INSERT IGNORE INTO t VALUES (1)",
                    "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)",
                    "INSERT INTO t VALUES (1, @x)",
                    "INSERT INTO t VALUES (1, LAST_INSERT_ID())",
                    "INSERT INTO t SELECT * FROM u",
                    "INSERT INTO t VALUES (1) /* c */",
                    "REPLACE INTO t VALUES (1)",
                    "INSERT INTO t (`name`) VALUES ('alice')",
                    "INSERT INTO t VALUES (1, 'a'), (NULL, 'b')",
                    "INSERT INTO t VALUES ( default, 'b')",
                    "SET STATEMENT max_statement_time=1 FOR INSERT INTO t VALUES (1)",
                    "SET @m = (SELECT MAX(id) FROM t)",
                ]
            ),
            [Kind::InOrder; 12]
        );
        // An id of 0 is AUTO_INCREMENT's unless the sql_mode says otherwise.
        assert_eq!(dialect.kind(b"SET SQL_MODE=''"), Kind::Everywhere);
        assert_eq!(dialect.kind(b"INSERT INTO t VALUES (0, 'a')"), Kind::InOrder);
        assert_eq!(dialect.kind(b"INSERT INTO t VALUES (7, 'a')"), Kind::Rows);
    }

    #[test]
    fn what_one_session_must_see_and_what_a_seed_may_not_hold() {
        let mut dialect = dumps_header();
        assert_eq!(
            kinds(
                &mut dialect,
                &[
                    "SET autocommit=0",
                    "/*!40101 SET @@SESSION.AUTOCOMMIT = 0 */",
                    "START TRANSACTION",
                    "commit",
                    "SET INSERT_ID = 5",
                    "CREATE TEMPORARY TABLE x (a int)",
                    "CREATE OR REPLACE TEMPORARY TABLE x (a int)",
                    "CREATE /*!32312 TEMPORARY*/ TABLE x (a int)",
                ]
            ),
            [Kind::OneSession; 8]
        );
        assert_eq!(dialect.kind(b"CREATE TABLE temporary_rows (a int)"), Kind::InOrder);
        for refused in ["DELIMITER ;;", "USE `shop`", "use shop\nSELECT 1", "quit", "source /tmp/x.sql", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'"] {
            assert!(matches!(dialect.kind(refused.as_bytes()), Kind::Refused(_)), "{refused}");
        }
    }
}
