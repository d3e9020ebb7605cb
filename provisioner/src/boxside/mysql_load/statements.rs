//! A SQL dump cut into statements where the `mariadb` client cuts it: at
//! `;` outside quotes and comments (client/mysql.cc `add_line`). `'`, `"`
//! and `` ` `` quote; a backslash escapes the next byte inside `''` and
//! `""`, not inside a `name`; `-- ` and `#` comment to the end of the
//! line, and so does `--` with no blank after it at a statement's start;
//! `/* */` is a comment, and `/*! */` (executable) is SQL the client passes
//! on. The differences from plain SQL rules were checked against MariaDB
//! 10.11's client. A backslash outside all of those is a client command
//! (`\!` runs a shell), refused here rather than guessed at: the sessions
//! get whole statements and a sync marker after them, and a statement cut
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
            // A UTF-8 byte order mark, then mariadb-dump's first line.
            let bom = if self.buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
            self.start = bom + if self.buf[bom..].starts_with(SANDBOX_LINE) { SANDBOX_LINE.len() } else { 0 };
            self.at = self.start;
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
                        // One byte on: in `---x` the second and third dashes
                        // start a comment, as the client reads them.
                        Some(c) if !self.fresh && !c.is_ascii_whitespace() && !c.is_ascii_control() => 1,
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
        assert_eq!(statements("\u{feff}/*!40101 SET NAMES utf8mb4 */;").unwrap(), ["/*!40101 SET NAMES utf8mb4 */"]);
        assert_eq!(statements("SELECT 1 --- it's;\nSELECT 2;").unwrap(), ["SELECT 1 --- it's;\nSELECT 2"]);
    }
}
