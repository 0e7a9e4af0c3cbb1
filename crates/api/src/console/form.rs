//! HTML forms: reading `application/x-www-form-urlencoded` bodies, turning the create form into
//! the JSON document `POST /v1/agents` takes, and placing the API's errors next to the field
//! they name.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::problem::ApiError;

/// The fields of a submitted form, in order (a name may repeat).
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    #[must_use]
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, or "".
    #[must_use]
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Errors to show: next to a field of the form, or above it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    pub by_field: BTreeMap<String, Vec<String>>,
    pub general: Vec<String>,
}

/// The form field an API error path belongs to: `env.FOO` and `plugins[2].source` are shown
/// next to `env` and `plugins`.
fn root(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

impl FieldErrors {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.by_field
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The messages shown next to `field`.
    #[must_use]
    pub fn of(&self, field: &str) -> &[String] {
        self.by_field.get(field).map_or(&[], Vec::as_slice)
    }

    /// Places each error the API gave next to the form field it names (one of `fields`), or
    /// above the form. The message keeps the full path (`env.FOO: ...`) so a person knows
    /// which entry of a list is at fault.
    #[must_use]
    pub fn from_api(error: &ApiError, fields: &[&str]) -> Self {
        let mut errors = Self::default();
        let mut place = |path: &str, message: &str| {
            // The schedule is two inputs: its time zone has one of its own.
            let field = if path == "schedule.timezone" {
                "schedule_timezone"
            } else {
                root(path)
            };
            if fields.contains(&field) {
                errors.add(field, format!("{path}: {message}"));
            } else {
                errors.general.push(format!("{path}: {message}"));
            }
        };
        match error {
            ApiError::Invalid(list) => {
                for e in &list.0 {
                    place(&e.field, &e.rule);
                }
            }
            ApiError::BadParameter { field, message } | ApiError::Forbidden { field, message } => {
                place(field, message);
            }
            ApiError::Conflict(message) => match message.split_once(": ") {
                Some((field, rest)) if fields.contains(&field) => place(field, rest),
                _ => errors.general.push(message.clone()),
            },
            other => errors.general.push(other.to_string()),
        }
        errors
    }
}

/// What a person typed into the create form, kept to show it again with the errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub agent_id: String,
    pub plan: String,
    pub image: String,
    pub desired_state: String,
    pub skills: String,
    pub plugins: String,
    pub env: String,
    pub secret_keys: String,
    pub tags: String,
    pub schedule_timezone: String,
    pub schedule: String,
    pub idle_stop_after: String,
}

/// The create form's fields, in the order they are shown.
pub const DRAFT_FIELDS: &[&str] = &[
    "agent_id",
    "plan",
    "image",
    "desired_state",
    "skills",
    "plugins",
    "env",
    "secret_keys",
    "tags",
    "schedule_timezone",
    "schedule",
    "idle_stop_after",
];

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// `KEY=VALUE` lines as a map; a line without `=` is named.
fn pairs(field: &str, text: &str, errors: &mut FieldErrors) -> Map<String, Value> {
    let mut map = Map::new();
    for (n, line) in lines(text) {
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                map.insert(
                    key.trim().to_owned(),
                    Value::String(value.trim().to_owned()),
                );
            }
            _ => errors.add(field, format!("line {n}: write KEY=VALUE")),
        }
    }
    map
}

/// Schedule windows, one a line: `DAYS START-END` with the days comma-separated
/// (`mon,tue,wed,thu,fri 08:00-20:00`). Only this syntax is checked here; the days, the times
/// and overlaps are the API's rules.
fn windows(text: &str, errors: &mut FieldErrors) -> Vec<Value> {
    let mut windows = Vec::new();
    for (n, line) in lines(text) {
        let parsed = line
            .split_once(char::is_whitespace)
            .and_then(|(days, times)| {
                let (start, end) = times.trim().split_once('-')?;
                let days: Vec<&str> = days.split(',').map(str::trim).collect();
                Some(json!({"days": days, "start": start.trim(), "end": end.trim()}))
            });
        match parsed {
            Some(window) => windows.push(window),
            None => errors.add(
                "schedule",
                format!("line {n}: write DAYS START-END, e.g. mon,tue,wed 08:00-20:00"),
            ),
        }
    }
    windows
}

impl Draft {
    #[must_use]
    pub fn from_fields(fields: &Fields) -> Self {
        Self {
            agent_id: fields.get("agent_id").trim().to_owned(),
            plan: fields.get("plan").trim().to_owned(),
            image: fields.get("image").trim().to_owned(),
            desired_state: fields.get("desired_state").trim().to_owned(),
            skills: fields.get("skills").to_owned(),
            plugins: fields.get("plugins").to_owned(),
            env: fields.get("env").to_owned(),
            secret_keys: fields.get("secret_keys").to_owned(),
            tags: fields.get("tags").to_owned(),
            schedule_timezone: fields.get("schedule_timezone").trim().to_owned(),
            schedule: fields.get("schedule").to_owned(),
            idle_stop_after: fields.get("idle_stop_after").trim().to_owned(),
        }
    }

    /// The JSON body of `POST /v1/agents`: empty fields are left out, so the API's defaults
    /// apply. Only the form's own syntax (one `KEY=VALUE` per line, a plugin as `NAME SOURCE
    /// VERSION`) is checked here; every rule of the spec is the API's.
    ///
    /// # Errors
    /// The lines that do not follow the form's syntax, by field.
    pub fn document(&self) -> Result<Value, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut doc = Map::new();
        for (name, value) in [
            ("agent_id", &self.agent_id),
            ("plan", &self.plan),
            ("image", &self.image),
            ("desired_state", &self.desired_state),
        ] {
            if !value.is_empty() {
                doc.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        for (name, text) in [("skills", &self.skills), ("secret_keys", &self.secret_keys)] {
            let list: Vec<Value> = lines(text)
                .map(|(_, l)| Value::String(l.to_owned()))
                .collect();
            if !list.is_empty() {
                doc.insert(name.to_owned(), Value::Array(list));
            }
        }
        let mut plugins = Vec::new();
        for (n, line) in lines(&self.plugins) {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [name, source, version] => {
                    plugins.push(json!({"name": name, "source": source, "version": version}));
                }
                _ => errors.add("plugins", format!("line {n}: write NAME SOURCE VERSION")),
            }
        }
        if !plugins.is_empty() {
            doc.insert("plugins".to_owned(), Value::Array(plugins));
        }
        for (name, text) in [("env", &self.env), ("tags", &self.tags)] {
            let map = pairs(name, text, &mut errors);
            if !map.is_empty() {
                doc.insert(name.to_owned(), Value::Object(map));
            }
        }
        let windows = windows(&self.schedule, &mut errors);
        if !self.schedule_timezone.is_empty() || !windows.is_empty() {
            doc.insert(
                "schedule".to_owned(),
                json!({"timezone": self.schedule_timezone, "windows": windows}),
            );
        }
        if !self.idle_stop_after.is_empty() {
            doc.insert(
                "idle_stop_after".to_owned(),
                Value::String(self.idle_stop_after.clone()),
            );
        }
        if errors.is_empty() {
            Ok(Value::Object(doc))
        } else {
            Err(errors)
        }
    }
}

/// The key/value rows of the secrets form (`key_N`, `value_N`); rows left blank are skipped.
///
/// # Errors
/// A value without a key, or a key without a value, named by row, never quoting the value.
pub fn secret_rows(fields: &Fields) -> Result<BTreeMap<String, String>, FieldErrors> {
    let mut values = BTreeMap::new();
    let mut errors = FieldErrors::default();
    for row in 0..MAX_SECRET_ROWS {
        let key = fields.get(&format!("key_{row}")).trim();
        let value = fields.get(&format!("value_{row}"));
        match (key.is_empty(), value.is_empty()) {
            (true, true) => {}
            (true, false) => errors
                .general
                .push(format!("row {}: a value needs a key name", row + 1)),
            (false, true) => errors.add(key, format!("{key}: needs a value")),
            (false, false) => {
                values.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    if values.is_empty() && errors.is_empty() {
        errors
            .general
            .push("enter at least one key and its value".to_owned());
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// Rows the secrets form reads.
pub const MAX_SECRET_ROWS: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use spec::{FieldError, ValidationErrors};

    #[test]
    fn the_create_form_becomes_the_api_document_leaving_out_empty_fields() {
        let fields = Fields::parse(
            b"agent_id=&plan=small&image=&desired_state=stopped&skills=web%0D%0A%0D%0Acode\
              &plugins=github+https%3A%2F%2Fexample.com%2Fp.git+1.0&env=MODE%3Dfast&secret_keys=OPENAI_API_KEY&tags=CostCenter%3D42",
        );
        let doc = Draft::from_fields(&fields).document().unwrap();
        assert_eq!(
            doc,
            json!({
                "plan": "small", "desired_state": "stopped", "skills": ["web", "code"],
                "plugins": [{"name": "github", "source": "https://example.com/p.git", "version": "1.0"}],
                "env": {"MODE": "fast"}, "secret_keys": ["OPENAI_API_KEY"], "tags": {"CostCenter": "42"},
            })
        );
    }

    #[test]
    fn the_schedule_inputs_become_the_schedule_and_its_errors_go_next_to_them() {
        let fields = Fields::parse(
            b"schedule_timezone=Europe%2FMadrid&schedule=mon%2Ctue+08%3A00-20%3A00%0D%0Asat+10%3A00-12%3A00&idle_stop_after=30m",
        );
        let doc = Draft::from_fields(&fields).document().unwrap();
        assert_eq!(
            doc,
            json!({
                "schedule": {"timezone": "Europe/Madrid", "windows": [
                    {"days": ["mon", "tue"], "start": "08:00", "end": "20:00"},
                    {"days": ["sat"], "start": "10:00", "end": "12:00"},
                ]},
                "idle_stop_after": "30m",
            })
        );
        let bad = Draft {
            schedule: "mon 08:00-20:00\nweekdays".into(),
            ..Draft::default()
        };
        assert_eq!(
            bad.document().unwrap_err().of("schedule"),
            ["line 2: write DAYS START-END, e.g. mon,tue,wed 08:00-20:00"]
        );
        let error = ApiError::Invalid(ValidationErrors(vec![
            FieldError {
                field: "schedule.timezone".into(),
                rule: "unknown time zone".into(),
            },
            FieldError {
                field: "schedule.windows[0].end".into(),
                rule: "must be after start".into(),
            },
        ]));
        let errors = FieldErrors::from_api(&error, DRAFT_FIELDS);
        assert_eq!(
            errors.of("schedule_timezone"),
            ["schedule.timezone: unknown time zone"]
        );
        assert_eq!(
            errors.of("schedule"),
            ["schedule.windows[0].end: must be after start"]
        );
    }

    #[test]
    fn lines_that_break_the_forms_syntax_are_named_by_field_and_line() {
        let draft = Draft {
            env: "A=1\nno-equals".into(),
            plugins: "only two".into(),
            ..Draft::default()
        };
        let errors = draft.document().unwrap_err();
        assert_eq!(errors.of("env"), ["line 2: write KEY=VALUE"]);
        assert_eq!(errors.of("plugins"), ["line 1: write NAME SOURCE VERSION"]);
    }

    #[test]
    fn api_errors_go_next_to_the_field_they_name() {
        let error = ApiError::Invalid(ValidationErrors(vec![
            FieldError {
                field: "image".into(),
                rule: "must be an OCI reference".into(),
            },
            FieldError {
                field: "plugins[0].source".into(),
                rule: "must be an https:// or git URL".into(),
            },
            FieldError {
                field: "cpu".into(),
                rule: "is not a Fargate size".into(),
            },
        ]));
        let errors = FieldErrors::from_api(&error, DRAFT_FIELDS);
        assert_eq!(errors.of("image"), ["image: must be an OCI reference"]);
        assert_eq!(
            errors.of("plugins"),
            ["plugins[0].source: must be an https:// or git URL"]
        );
        assert_eq!(errors.general, ["cpu: is not a Fargate size"]);
        let taken = ApiError::Conflict("agent_id: acme-x is taken; choose another".into());
        assert_eq!(
            FieldErrors::from_api(&taken, DRAFT_FIELDS).of("agent_id"),
            ["agent_id: acme-x is taken; choose another"]
        );
    }

    #[test]
    fn secret_rows_never_quote_a_value_in_an_error() {
        let fields =
            Fields::parse(b"key_0=A&value_0=s3cret&key_1=&value_1=orphan-value&key_2=B&value_2=");
        let errors = secret_rows(&fields).unwrap_err();
        let all = format!("{errors:?}");
        assert!(
            !all.contains("s3cret") && !all.contains("orphan-value"),
            "{all}"
        );
        assert_eq!(errors.of("B"), ["B: needs a value"]);
        assert_eq!(errors.general, ["row 2: a value needs a key name"]);
        let ok = secret_rows(&Fields::parse(b"key_0=A&value_0=x")).unwrap();
        assert_eq!(ok, [("A".to_owned(), "x".to_owned())].into());
    }
}
