//! A typed, span-aware view of one TOML table. Every getter turns a problem
//! into a `ConfigError` carrying the file, line and full key path, so the
//! section parsers stay free of error plumbing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::error::ConfigError;

pub(crate) type Res<T> = Result<T, ConfigError>;

/// State shared by all readers of one file.
pub(crate) struct Ctx {
    pub file: String,
    line_starts: Vec<usize>,
    pub lines: RefCell<BTreeMap<String, usize>>,
}

impl Ctx {
    pub fn new(file: &str, text: &str) -> Ctx {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ctx {
            file: file.to_string(),
            line_starts,
            lines: RefCell::default(),
        }
    }

    /// 1-based line of a byte span's start.
    pub fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_starts.partition_point(|&start| start <= s.start))
    }

    pub fn record(&self, key: &str, line: usize) {
        self.lines
            .borrow_mut()
            .entry(key.to_string())
            .or_insert(line);
    }

    /// Line of a recorded key, falling back to the nearest recorded parent.
    pub fn line_of(&self, key: &str) -> usize {
        lookup(&self.lines.borrow(), key)
    }

    pub fn err_at(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Error about an already-read key, located through the line map.
    pub fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.err_at(self.line_of(key), key, message)
    }
}

pub(crate) fn lookup(lines: &BTreeMap<String, usize>, key: &str) -> usize {
    let mut k = key;
    loop {
        if let Some(&line) = lines.get(k) {
            return line;
        }
        match k.rfind(['.', '[']) {
            Some(i) => k = &k[..i],
            None => return 0,
        }
    }
}

/// "a string", "an integer", ... for type-mismatch messages.
pub(crate) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// An element of a table array: the table (if it is one), its span and its type name.
type Element<'a> = (
    Option<&'a dyn TableLike>,
    Option<Range<usize>>,
    &'static str,
);

/// A reader over one table (standard, inline or implicit).
pub(crate) struct Tab<'a> {
    pub cx: &'a Ctx,
    /// Key path of this table; empty for the document root.
    pub path: String,
    /// Line of the table header (or of the inline table).
    pub line: usize,
    t: &'a dyn TableLike,
}

impl<'a> Tab<'a> {
    /// Wraps a table and records the lines of its header and keys.
    pub fn new(cx: &'a Ctx, path: String, line: usize, t: &'a dyn TableLike) -> Tab<'a> {
        let tab = Tab { cx, path, line, t };
        if !tab.path.is_empty() {
            cx.record(&tab.path, line);
        }
        for (k, _) in t.iter() {
            cx.record(&tab.key_path(k), tab.line_of(k));
        }
        tab
    }

    /// Like `new`, then refuses any key not in `allowed`.
    pub fn open(
        cx: &'a Ctx,
        path: String,
        line: usize,
        t: &'a dyn TableLike,
        allowed: &[&str],
    ) -> Res<Tab<'a>> {
        let tab = Tab::new(cx, path, line, t);
        tab.check_keys(allowed)?;
        Ok(tab)
    }

    fn check_keys(&self, allowed: &[&str]) -> Res<()> {
        match self.t.iter().find(|(k, _)| !allowed.contains(k)) {
            None => Ok(()),
            Some((k, _)) => Err(self.err(
                k,
                format!("unknown key {k:?}; accepted keys: {}", allowed.join(", ")),
            )),
        }
    }

    pub fn key_path(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// Line of key `k`: its own span, else its value's, else the header's.
    pub fn line_of(&self, k: &str) -> usize {
        let key_line = self.t.key(k).and_then(|key| self.cx.line(key.span()));
        let item_line = || self.t.get(k).and_then(|i| self.cx.line(i.span()));
        key_line.or_else(item_line).unwrap_or(self.line)
    }

    pub fn has(&self, k: &str) -> bool {
        self.t.get(k).is_some_and(|i| !i.is_none())
    }

    /// Error located at key `k` of this table.
    pub fn err(&self, k: &str, message: impl Into<String>) -> ConfigError {
        self.cx.err_at(self.line_of(k), &self.key_path(k), message)
    }

    /// Error about this table as a whole, at its header.
    pub fn err_here(&self, message: impl Into<String>) -> ConfigError {
        self.cx.err_at(self.line, &self.path, message)
    }

    pub fn required<T>(&self, k: &str, v: Option<T>) -> Res<T> {
        v.ok_or_else(|| self.err_here(format!("missing required key {k:?}")))
    }

    /// Refuses key `k` when present, e.g. a key meant for another mode.
    pub fn refuse(&self, k: &str, why: &str) -> Res<()> {
        if self.has(k) {
            return Err(self.err(k, format!("{k:?} {why}")));
        }
        Ok(())
    }

    fn item(&self, k: &str) -> Option<&'a Item> {
        self.t.get(k).filter(|i| !i.is_none())
    }

    fn wrong_type(&self, k: &str, expected: &str, found: &Item) -> ConfigError {
        self.err(
            k,
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    pub fn str(&self, k: &str) -> Res<Option<&'a str>> {
        match self.item(k) {
            None => Ok(None),
            Some(i) => i
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(k, "a string", i)),
        }
    }

    pub fn string(&self, k: &str) -> Res<Option<String>> {
        Ok(self.str(k)?.map(str::to_string))
    }

    pub fn bool(&self, k: &str) -> Res<Option<bool>> {
        match self.item(k) {
            None => Ok(None),
            Some(i) => i
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong_type(k, "a boolean", i)),
        }
    }

    /// An integer within `lo..=hi`, converted to the target type.
    pub fn int<T: TryFrom<i64>>(&self, k: &str, lo: i64, hi: i64) -> Res<Option<T>> {
        let Some(i) = self.item(k) else {
            return Ok(None);
        };
        let v = i
            .as_integer()
            .ok_or_else(|| self.wrong_type(k, "an integer", i))?;
        check_range(v, lo, hi).map_err(|m| self.err(k, m))?;
        T::try_from(v)
            .map(Some)
            .map_err(|_| self.err(k, format!("{v} is out of range")))
    }

    /// A string value run through `parse`.
    pub fn parsed<T>(&self, k: &str, parse: impl Fn(&str) -> Result<T, String>) -> Res<Option<T>> {
        match self.str(k)? {
            None => Ok(None),
            Some(s) => parse(s).map(Some).map_err(|m| self.err(k, m)),
        }
    }

    /// One of a fixed set of spellings.
    pub fn choice<T: Copy>(&self, k: &str, options: &[(&str, T)]) -> Res<Option<T>> {
        let Some(s) = self.str(k)? else {
            return Ok(None);
        };
        match options.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => Ok(Some(*v)),
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                Err(self.err(
                    k,
                    format!("invalid value {s:?}; expected one of: {}", names.join(", ")),
                ))
            }
        }
    }

    /// Array elements with their lines.
    pub fn array(&self, k: &str) -> Res<Option<Vec<(&'a Value, usize)>>> {
        let Some(i) = self.item(k) else {
            return Ok(None);
        };
        let arr = i
            .as_array()
            .ok_or_else(|| self.wrong_type(k, "an array", i))?;
        let line = self.line_of(k);
        Ok(Some(
            arr.iter()
                .map(|v| (v, self.cx.line(v.span()).unwrap_or(line)))
                .collect(),
        ))
    }

    /// An array of strings, each run through `parse`, with element lines.
    pub fn list<T>(
        &self,
        k: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Res<Option<Vec<(T, usize)>>> {
        let Some(elems) = self.array(k)? else {
            return Ok(None);
        };
        let path = self.key_path(k);
        let mut out = Vec::with_capacity(elems.len());
        for (n, (v, line)) in elems.into_iter().enumerate() {
            let s = v.as_str().ok_or_else(|| {
                let found = value_type(v);
                self.cx.err_at(
                    line,
                    &path,
                    format!("element {n}: expected a string, found {found}"),
                )
            })?;
            out.push((parse(s).map_err(|m| self.cx.err_at(line, &path, m))?, line));
        }
        Ok(Some(out))
    }

    pub fn strings(&self, k: &str) -> Res<Option<Vec<String>>> {
        let list = self.list(k, |s| Ok(s.to_string()))?;
        Ok(list.map(|l| l.into_iter().map(|(s, _)| s).collect()))
    }

    /// A sub-table (standard, dotted or inline) with a fixed key set.
    pub fn sub(&self, k: &str, allowed: &[&str]) -> Res<Option<Tab<'a>>> {
        let Some(i) = self.item(k) else {
            return Ok(None);
        };
        let t = i
            .as_table_like()
            .ok_or_else(|| self.wrong_type(k, "a table", i))?;
        Tab::open(self.cx, self.key_path(k), self.line_of(k), t, allowed).map(Some)
    }

    /// A sub-table whose keys are names chosen by the user (`[pool.NAME]`).
    pub fn names(&self, k: &str) -> Res<Option<Tab<'a>>> {
        let Some(i) = self.item(k) else {
            return Ok(None);
        };
        let t = i
            .as_table_like()
            .ok_or_else(|| self.wrong_type(k, "a table", i))?;
        Ok(Some(Tab::new(
            self.cx,
            self.key_path(k),
            self.line_of(k),
            t,
        )))
    }

    /// Named sub-tables such as `[pool.NAME]`, each with a fixed key set.
    pub fn named(&self, allowed: &[&str]) -> Res<Vec<(&'a str, Tab<'a>)>> {
        let mut out = Vec::new();
        for (name, i) in self.t.iter() {
            let t = i
                .as_table_like()
                .ok_or_else(|| self.wrong_type(name, "a table", i))?;
            let line = self.cx.line(i.span()).unwrap_or_else(|| self.line_of(name));
            out.push((
                name,
                Tab::open(self.cx, self.key_path(name), line, t, allowed)?,
            ));
        }
        Ok(out)
    }

    /// `[[k]]` array of tables, or an array of inline tables; empty when absent.
    pub fn tables(&self, k: &str, allowed: &[&str]) -> Res<Vec<Tab<'a>>> {
        let Some(i) = self.item(k) else {
            return Ok(Vec::new());
        };
        let path = self.key_path(k);
        let line = self.line_of(k);
        let elems: Vec<Element<'a>> = match i {
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| (Some(t as _), t.span(), "a table"))
                .collect(),
            Item::Value(Value::Array(a)) => a
                .iter()
                .map(|v| (v.as_inline_table().map(|t| t as _), v.span(), value_type(v)))
                .collect(),
            other => return Err(self.wrong_type(k, "an array of tables", other)),
        };
        let mut out = Vec::with_capacity(elems.len());
        for (n, (t, span, found)) in elems.into_iter().enumerate() {
            let el_line = self.cx.line(span).unwrap_or(line);
            let el_path = format!("{path}[{n}]");
            let t = t.ok_or_else(|| {
                self.cx.err_at(
                    el_line,
                    &el_path,
                    format!("expected a table, found {found}"),
                )
            })?;
            out.push(Tab::open(self.cx, el_path, el_line, t, allowed)?);
        }
        Ok(out)
    }

    /// The raw item, for keys accepting several types.
    pub fn raw(&self, k: &str) -> Option<&'a Item> {
        self.item(k)
    }
}

pub(crate) fn check_range(v: i64, lo: i64, hi: i64) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else if hi >= i64::from(u32::MAX) {
        Err(format!("must be at least {lo}, found {v}"))
    } else {
        Err(format!("must be between {lo} and {hi}, found {v}"))
    }
}
