//! Each statement of a dump sorted by what it may run beside: a plain
//! multi-row `INSERT ... VALUES` on any session, a `SET` on every session,
//! anything else on one session after everything before it; and what a
//! seed may not hold at all.

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

/// sql_modes that make `"` quote names, inside which the client then
/// takes a backslash as itself (ANSI_QUOTES, and the modes that include it).
const QUOTE_MODES: [&[u8]; 7] = [b"ANSI", b"ORACLE", b"POSTGRESQL", b"MSSQL", b"DB2", b"MAXDB", b"ANSI_QUOTES"];

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
        // The statement past its leading comments (a dump's header says "for debian").
        let upper = body.to_ascii_uppercase();
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
            b"SET" if has(b"NO_BACKSLASH_ESCAPES") || (has(b"SQL_MODE") && QUOTE_MODES.iter().any(|m| has(m))) => {
                Kind::Refused("the dump sets NO_BACKSLASH_ESCAPES or ANSI_QUOTES (or a mode that includes it), which changes where the client's statements end; dump without them")
            }
            b"SET" if has(b"AUTOCOMMIT") || has(b"TRANSACTION") || has(b"INSERT_ID") || has(b"TIMESTAMP") => Kind::OneSession,
            // `SET STATEMENT ... FOR` runs a statement; a subquery reads rows.
            b"SET" if word(skip_space(rest)).0 == b"STATEMENT" || has(b"SELECT") => Kind::InOrder,
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
        w == b"NULL" || w == b"DEFAULT" || (w == b"0" && !zero_is_a_value) || value.starts_with(b")")
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
        // At a statement's start `--` is a comment even with no blank after it.
        if s.starts_with(b"#") || s.starts_with(b"--") {
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

    fn kinds(dialect: &mut Dialect, sql: &[&str]) -> Vec<Kind> {
        sql.iter().map(|s| dialect.kind(s.as_bytes())).collect()
    }

    /// What mysqldump's and mariadb-dump's header sets.
    fn dumps_header() -> Dialect {
        let mut dialect = Dialect::default();
        let header = [
            "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
            "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */",
            "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
        ];
        assert_eq!(kinds(&mut dialect, &header), [Kind::Everywhere; 3]);
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
                    "INSERT INTO t VALUES ()",
                    "SET STATEMENT max_statement_time=1 FOR INSERT INTO t VALUES (1)",
                    "SET STATEMENT max_statement_time=1\nFOR INSERT INTO t VALUES (1)",
                    "SET @m = (SELECT MAX(id) FROM t)",
                ]
            ),
            [Kind::InOrder; 14]
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
        for refused in [
            "DELIMITER ;;",
            "USE `shop`",
            "use shop\nSELECT 1",
            "--x\nuse shop",
            "quit",
            "source /tmp/x.sql",
            "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
            "/*!40101 SET SQL_MODE='ANSI' */",
        ] {
            assert!(matches!(dialect.kind(refused.as_bytes()), Kind::Refused(_)), "{refused}");
        }
    }
}
